/** DEFAULT_MAX_MESSAGE_BYTES bounds a gRPC message either way; bigger ones fail with RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** MEDIA_MAX_MESSAGE_BYTES bounds Infer messages, which carry uploads (25 MiB by default) as bytes. */
export const MEDIA_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
