/**
 * The gateway's documented routes, as the dashboard calls them: the session cookie rides along by itself, and every
 * write carries the session's CSRF token. Errors arrive in OpenAI's envelope and become ApiErrors whose message is
 * the gateway's own, written for people.
 */

/** ApiError is a refused or failed call: the HTTP status, and the envelope's message and code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let csrfToken = "";

/** useCsrfToken sets the token every write of this session carries (from sign-in or GET /api/auth/session). */
export function useCsrfToken(token: string): void {
  csrfToken = token;
}

/** onSessionEnded is told when the gateway says the session is over, so that the app can go back to sign-in. */
let sessionEnded: () => void = () => {};
export function onSessionEnded(listener: () => void): void {
  sessionEnded = listener;
}

/** call sends a request with the CSRF token and throws an ApiError for any answer that is not 2xx. */
export async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (csrfToken !== "" && init.method !== undefined && init.method !== "GET") headers.set("x-csrf-token", csrfToken);
  const response = await fetch(path, { ...init, headers, credentials: "same-origin" });
  if (response.ok) return response;
  const failure = await errorOf(response);
  if (response.status === 401 && failure.code === "session_expired") sessionEnded();
  throw failure;
}

/** api sends JSON (when a body is given) and reads JSON back; 204 reads as undefined. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await call(path, init);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

/** errorOf reads OpenAI's error envelope, or says what came instead. */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const envelope = JSON.parse(text) as { error?: { message?: unknown; code?: unknown } };
    const message = envelope.error?.message;
    if (typeof message === "string") {
      const code = envelope.error?.code;
      return new ApiError(response.status, message, typeof code === "string" ? code : undefined);
    }
  } catch {
    // Not JSON: a proxy's page, say. The status is what there is to tell.
  }
  return new ApiError(
    response.status,
    `The gateway answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`,
    undefined,
  );
}

/** messageOf is what to show for anything a call threw. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return "The gateway cannot be reached; check the connection and try again.";
  return error instanceof Error ? error.message : String(error);
}
