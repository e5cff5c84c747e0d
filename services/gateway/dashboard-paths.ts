/**
 * dashboard-paths holds the paths of the dashboard's pages that links from outside the browser open: the CLI prints
 * them, `infermesh dev` prints one, and the gateway serves the pages there. A link's token rides in the URL's
 * fragment, which browsers never send, so that it reaches no server's or proxy's access log.
 */

/** DASHBOARD_PATH is where the dashboard is served. */
export const DASHBOARD_PATH = "/dashboard/";

/** INVITE_PATH is where `infermesh users add` sends a new member to set a password: `#token=...` follows. */
export const INVITE_PATH = "/invite";

/**
 * SIGN_IN_LINK_PATH is where a one-time sign-in link opens: `#token=...` follows, and the page posts the token to
 * POST /api/auth/sign-in-link.
 */
export const SIGN_IN_LINK_PATH = "/dashboard/sign-in";
