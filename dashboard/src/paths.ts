/** The dashboard's own addresses. The gateway serves index.html for each (services/gateway/dashboard-routes.ts). */
export const PATHS = {
  home: "/dashboard/",
  signIn: "/dashboard/sign-in",
  invite: "/invite",
  playground: "/dashboard/playground",
  providers: "/dashboard/providers",
  models: "/dashboard/models",
  usage: "/dashboard/usage",
  tokens: "/dashboard/settings/tokens",
} as const;

/** fragmentParam reads a parameter of the URL's fragment, where invite and sign-in links carry their token. */
export function fragmentParam(name: string): string | undefined {
  return new URLSearchParams(location.hash.slice(1)).get(name) ?? undefined;
}
