/** The shapes of the gateway's answers the dashboard reads (see /openapi.json). */

export interface SessionUser {
  readonly id: string;
  readonly name: string;
}

/** SignedIn is what sign-in, invites and GET /api/auth/session answer. */
export interface SignedIn {
  readonly user: SessionUser;
  readonly csrf_token: string;
}

export interface List<T> {
  readonly object: "list";
  readonly data: readonly T[];
}

export interface ApiKey {
  readonly id: string;
  readonly label: string;
  readonly created_at: number | null;
  readonly last_used_at: number | null;
}

export interface CreatedApiKey extends ApiKey {
  readonly key: string;
}

export type ProviderStatus = "online" | "offline" | "paused" | "draining";
export type Visibility = "private" | "users" | "public";

export interface ProviderModel {
  readonly id: string;
  readonly service_type: string;
  readonly supported_features: readonly string[];
  readonly context_length: number | null;
}

export interface Provider {
  readonly id: string;
  readonly name: string;
  readonly status: ProviderStatus;
  readonly online: boolean;
  readonly paused: boolean;
  readonly last_seen: number | null;
  readonly sharing: { readonly visibility: Visibility; readonly users: readonly string[] };
  readonly models: readonly ProviderModel[];
  readonly load: { readonly in_flight: number; readonly max_concurrency: number; readonly queued: number };
  readonly version: string;
}

export interface Model {
  readonly id: string;
  readonly object: "model";
  readonly owned_by: string;
  readonly service_type: string;
  readonly input_modalities: readonly string[];
  readonly output_modalities: readonly string[];
  readonly supported_features: readonly string[];
  readonly context_length: number | null;
  readonly engine?: string;
  readonly quantization?: string;
  /** served_by names each provider that serves the model to this caller, and its owner. */
  readonly served_by?: readonly { readonly provider: string; readonly owner: string }[];
}

export type UsageGroup = "day" | "hour" | "model" | "key" | "provider" | "user";

export interface UsageRow {
  readonly day?: string;
  readonly hour?: string;
  readonly model?: string;
  readonly key?: string;
  readonly provider?: string;
  readonly user?: string;
  readonly requests: number;
  readonly errors: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly audio_seconds: number;
  readonly images: number;
  readonly ttfb_ms_avg: number;
  readonly duration_ms_avg: number;
}

export interface UsageAnswer extends List<UsageRow> {
  readonly scope: "mine" | "providers";
  readonly from: string;
  readonly to: string;
}
