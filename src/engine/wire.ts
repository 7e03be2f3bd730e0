// The engine-to-plugin wire format, as moby's pkg/authorization/api.go
// defines it. Note the spelling RequestUri: the public docs say RequestURI.

export const PLUGIN_PATHS = {
  activate: '/Plugin.Activate',
  authzReq: '/AuthZPlugin.AuthZReq',
  authzRes: '/AuthZPlugin.AuthZRes',
} as const;

// The call envelope. The engine marshals it with Go's encoding/json, so any
// field may be missing or null (a nil byte slice becomes null).
export interface AuthZRequest {
  User?: string | null;
  UserAuthNMethod?: string | null;
  RequestMethod?: string | null;
  RequestUri?: string | null;
  RequestBody?: string | null; // base64
  RequestHeaders?: Record<string, string> | null;
  RequestPeerCertificates?: unknown;
}

export interface AuthZResponse {
  Allow: boolean;
  Msg: string;
}

export const ACTIVATE_RESPONSE = { Implements: ['authz'] } as const;

// The engine forwards a request body to plugins only below this size (20.10:
// 1 MiB; it drops larger ones silently and still runs the handler).
export const ENGINE_BODY_FORWARD_LIMIT = 1 << 20;

// An AuthZReq envelope larger than this is refused. The newest engines cap
// forwarded bodies at 4 MiB, which base64 makes 5.6 MiB; 8 MiB leaves room
// for headers and the rest of the envelope.
export const MAX_AUTHZREQ_BYTES = 8 << 20;
