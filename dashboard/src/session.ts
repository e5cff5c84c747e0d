import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { SessionUser } from "./types.js";

/** Session is the signed-in member, and how to end their session. */
export interface Session {
  readonly user: SessionUser;
  readonly signOut: () => Promise<void>;
}

export const SessionContext = createContext<Session | undefined>(undefined);

/** useSession is the signed-in member; pages under the app shell are only rendered while there is one. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

/** SIGNED_IN_HINT is the gateway's readable cookie that says a session cookie is set, so no 401 is needed to find out. */
const SIGNED_IN_HINT = "infermesh_signed_in=1";

export function mayBeSignedIn(): boolean {
  return document.cookie.split(";").some((part) => part.trim() === SIGNED_IN_HINT);
}
