import type { FastifyInstance } from "fastify";

/** INVITE_PATH is where `infermesh users add` sends a new member: the invite's token rides in the URL's fragment. */
export const INVITE_PATH = "/invite";

/**
 * INVITE_PAGE sets an invited member's password. The token stays in the fragment, which browsers never send, so it
 * reaches no server log; the page posts it to POST /api/auth/invite with the password, which signs the member in.
 * The dashboard will take this page over; until then it is the one page the invite link needs.
 */
const INVITE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>infermesh: set your password</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 26rem; margin: 3rem auto; padding: 0 1rem; }
  label { display: block; margin-top: 1rem; }
  input { display: block; width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }
  button { margin-top: 1.5rem; padding: .5rem 1.5rem; font: inherit; }
  [role=status] { margin-top: 1rem; }
</style>
</head>
<body>
<main>
  <h1>Set your password</h1>
  <form id="invite">
    <label for="password">New password (8 characters or more)</label>
    <input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
    <label for="again">The same again</label>
    <input id="again" name="again" type="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
    <button type="submit">Set password and sign in</button>
  </form>
  <p id="result" role="status" aria-live="polite"></p>
  <section id="keys" hidden>
    <h2>Your API key</h2>
    <p>One key serves OpenAI clients (as <code>OPENAI_API_KEY</code>) and your agents (<code>--api-key-file</code>).</p>
    <label for="label">A label for the key</label>
    <input id="label" maxlength="256" value="first key">
    <button id="make" type="button">Make a key</button>
    <p>Shown once, here: <output id="key" for="make"></output></p>
  </section>
</main>
<script type="module" src="${INVITE_PATH}/invite.js"></script>
</body>
</html>
`;

/** INVITE_SCRIPT reads the token from the fragment and sets the password through the members' API. */
const INVITE_SCRIPT = `const form = document.getElementById("invite");
const result = document.getElementById("result");
const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
let csrf = "";
if (!token) result.textContent = "This page needs the invite link your operator gave you.";
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = form.password.value;
  if (password !== form.again.value) {
    result.textContent = "The two passwords differ.";
    return;
  }
  const response = await fetch("/api/auth/invite", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, password }),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.ok) {
    history.replaceState(null, "", location.pathname);
    form.hidden = true;
    result.textContent = "Your password is set and you are signed in as " + answer.user.name + ".";
    csrf = answer.csrf_token;
    document.getElementById("keys").hidden = false;
  } else {
    result.textContent = answer.error?.message ?? "The invite could not be used (HTTP " + response.status + ").";
  }
});
document.getElementById("make").addEventListener("click", async () => {
  const response = await fetch("/api/keys", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify({ label: document.getElementById("label").value }),
  });
  const answer = await response.json().catch(() => ({}));
  document.getElementById("key").textContent = response.ok ? answer.key : (answer.error?.message ?? "HTTP " + response.status);
});
`;

/** PAGE_POLICY lets the page run its own script and call its own origin, and nothing else. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'";

/** invitePage serves the invite link's page and its script. */
export async function invitePage(app: FastifyInstance): Promise<void> {
  app.get(INVITE_PATH, { schema: { hide: true } }, async (_request, reply) =>
    reply.header("content-type", "text/html; charset=utf-8").header("content-security-policy", PAGE_POLICY).send(INVITE_PAGE),
  );
  app.get(`${INVITE_PATH}/invite.js`, { schema: { hide: true } }, async (_request, reply) =>
    reply.header("content-type", "text/javascript; charset=utf-8").send(INVITE_SCRIPT),
  );
}
