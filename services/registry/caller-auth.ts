import { Code, ConnectError } from "@connectrpc/connect";
import type { Metadata } from "@grpc/grpc-js";
import { bearerCredential } from "../shared/bearer.js";
import { secretMatcher } from "../shared/secret-match.js";
import type { Principal, RegistryStore } from "./store/registry-store.js";

/** Caller is who made a registry call: a gateway or operator holding the mesh token, or a user through an API key. */
export type Caller = { readonly kind: "mesh" } | { readonly kind: "user"; readonly principal: Principal };

/** CallerAuth resolves a call's `authorization` metadata to its Caller. */
export interface CallerAuth {
  /** authenticate returns the caller, or throws UNAUTHENTICATED. */
  authenticate(metadata: Metadata): Promise<Caller>;
}

/**
 * createCallerAuth checks bearer credentials: the mesh token in constant time, anything else as an API key through
 * the store (which also compares in constant time). The reason a credential failed is never told to the caller.
 */
export function createCallerAuth(store: RegistryStore, meshToken: string): CallerAuth {
  const isMeshToken = secretMatcher(meshToken);
  return {
    async authenticate(metadata) {
      const credential = bearerCredential(metadata);
      if (credential === undefined) throw unauthenticated("missing bearer credential in 'authorization' metadata");
      if (isMeshToken(credential)) return { kind: "mesh" };
      const principal = await store.authenticate(credential);
      if (!principal) throw unauthenticated("invalid or revoked API key");
      return { kind: "user", principal };
    },
  };
}

/** unauthenticated is the error every failed credential check throws. */
export function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}
