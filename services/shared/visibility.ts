import { type Provider, Visibility } from "../../gen/infermesh/v1/registry_pb.js";

/** Viewer is the user on whose behalf a provider is looked at. */
export interface Viewer {
  readonly userId: string;
  readonly userName: string;
}

/**
 * canSee tells whether a user may route to (and so see) a provider: their own, or one shared with them. The registry
 * filters what users see with it, and the gateway filters its routes with it: the same rule on both sides.
 */
export function canSee(user: Viewer, provider: Provider): boolean {
  if (provider.ownerUserId === user.userId) return true;
  const sharing = provider.sharing;
  if (!sharing) return false;
  switch (sharing.visibility) {
    case Visibility.PUBLIC:
      return true;
    case Visibility.USERS:
      return sharing.allowedUsers.includes(user.userName);
    case Visibility.PRIVATE:
    case Visibility.UNSPECIFIED:
      return false;
  }
}
