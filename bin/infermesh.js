#!/usr/bin/env node
// infermesh: the command's entry point. It runs the compiled CLI (`npm run build`, which `npm ci` runs through
// `prepare`).
import "../dist/src/cli/main.js";
