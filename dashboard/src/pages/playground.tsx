import { Page } from "../components/page.js";

export function PlaygroundPage() {
  return <Page title="Playground">{null}</Page>;
}
