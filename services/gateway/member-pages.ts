import type { FastifyInstance, FastifyReply } from "fastify";

/** INVITE_PATH is where `infermesh users add` sends a new member: the invite's token rides in the URL's fragment. */
export const INVITE_PATH = "/invite";
/** SIGN_IN_PATH is the members' page: sign in, then keys. */
export const SIGN_IN_PATH = "/";
/** MEMBER_SCRIPT_PATH is the one script both pages run. */
const MEMBER_SCRIPT_PATH = "/member-page.js";

/**
 * The members' pages until the dashboard takes over: sign in (or set the password an invite asks for), then make,
 * list and revoke API keys, through the documented /api/ routes with the session cookie and its CSRF token. An
 * invite's token stays in the URL's fragment, which browsers never send, so it reaches no server log.
 */
const MEMBER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>infermesh</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; }
  label { display: block; margin-top: 1rem; }
  input { display: block; width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }
  button { margin-top: 1rem; padding: .4rem 1.2rem; font: inherit; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  td, th { text-align: left; padding: .3rem .5rem .3rem 0; }
  output { font-family: monospace; word-break: break-all; }
</style>
</head>
<body>
<main>
  <h1>infermesh</h1>
  <form id="signin" hidden>
    <h2>Sign in</h2>
    <label for="name">User name</label>
    <input id="name" name="name" autocomplete="username" maxlength="64" required>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" maxlength="1024" required>
    <button type="submit">Sign in</button>
  </form>
  <form id="invite" hidden>
    <h2>Set your password</h2>
    <label for="new-password">New password (8 characters or more)</label>
    <input id="new-password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
    <label for="again">The same again</label>
    <input id="again" name="again" type="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
    <button type="submit">Set password and sign in</button>
  </form>
  <p id="result" role="status" aria-live="polite"></p>
  <section id="account" hidden>
    <h2>API keys</h2>
    <p>One key serves OpenAI clients (as <code>OPENAI_API_KEY</code>) and your agents (<code>--api-key-file</code>).</p>
    <label for="label">A label for a new key</label>
    <input id="label" maxlength="256" value="my key">
    <button id="make" type="button">Make a key</button>
    <p>New key, shown once: <output id="key" for="make"></output></p>
    <table><thead><tr><th>Key</th><th>Label</th><th>Last used</th><th></th></tr></thead><tbody id="keys"></tbody></table>
    <button id="signout" type="button">Sign out</button>
    <p><a href="/docs">API explorer</a></p>
  </section>
</main>
<script type="module" src="${MEMBER_SCRIPT_PATH}"></script>
</body>
</html>
`;

/** MEMBER_SCRIPT drives both pages with the members' API. */
const MEMBER_SCRIPT = `const $ = (id) => document.getElementById(id);
const say = (text) => { $("result").textContent = text; };
let csrf = "";
let signedIn;

async function api(method, path, body) {
  const headers = csrf ? { "x-csrf-token": csrf } : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error?.message ?? "HTTP " + response.status);
  return answer;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
  return td;
}

async function showAccount(session) {
  signedIn = session;
  csrf = session.csrf_token;
  $("signin").hidden = true;
  $("invite").hidden = true;
  $("account").hidden = false;
  say("Signed in as " + session.user.name + ".");
  const { data } = await api("GET", "/api/keys");
  $("keys").replaceChildren(...data.map((key) => {
    const row = document.createElement("tr");
    cell(row, key.id);
    cell(row, key.label);
    cell(row, key.last_used_at ? new Date(key.last_used_at * 1000).toLocaleString() : "never");
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", "Revoke key " + key.label);
    revoke.addEventListener("click", () => api("DELETE", "/api/keys/" + key.id).then(() => showAccount(session), (e) => say(e.message)));
    cell(row, "").append(revoke);
    return row;
  }));
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await showAccount(await api("POST", "/api/auth/login", { name: $("name").value, password: $("password").value }));
  } catch (error) {
    say(error.message);
  }
});

$("invite").addEventListener("submit", async (event) => {
  event.preventDefault();
  if ($("new-password").value !== $("again").value) return say("The two passwords differ.");
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
  try {
    const session = await api("POST", "/api/auth/invite", { token, password: $("new-password").value });
    history.replaceState(null, "", "/");
    await showAccount(session);
  } catch (error) {
    say(error.message);
  }
});

$("make").addEventListener("click", async () => {
  try {
    const made = await api("POST", "/api/keys", { label: $("label").value });
    await showAccount(signedIn);
    $("key").textContent = made.key;
  } catch (error) {
    say(error.message);
  }
});

$("signout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout").catch(() => {});
  csrf = "";
  signedIn = undefined;
  $("account").hidden = true;
  $("key").textContent = "";
  $("signin").hidden = false;
  say("Signed out.");
});

if (location.pathname === "${INVITE_PATH}") {
  $("invite").hidden = false;
  if (!location.hash.includes("token=")) say("This page needs the invite link your operator gave you.");
} else if (document.cookie.split("; ").includes("infermesh_signed_in=1")) {
  api("GET", "/api/auth/session").then(showAccount, () => {
    document.cookie = "infermesh_signed_in=; path=/; max-age=0";
    $("signin").hidden = false;
  });
} else {
  $("signin").hidden = false;
}
`;

/** PAGE_POLICY lets the pages run their own script and call their own origin, and nothing else. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

function page(reply: FastifyReply) {
  return reply.header("content-type", "text/html; charset=utf-8").header("content-security-policy", PAGE_POLICY).send(MEMBER_PAGE);
}

/** memberPages serves the sign-in page, the invite link's page and their script. */
export async function memberPages(app: FastifyInstance): Promise<void> {
  app.get(SIGN_IN_PATH, { schema: { hide: true } }, async (_request, reply) => page(reply));
  app.get(INVITE_PATH, { schema: { hide: true } }, async (_request, reply) => page(reply));
  app.get(MEMBER_SCRIPT_PATH, { schema: { hide: true } }, async (_request, reply) =>
    reply.header("content-type", "text/javascript; charset=utf-8").send(MEMBER_SCRIPT),
  );
}
