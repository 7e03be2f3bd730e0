// Below API 1.24, POST /containers/{id}/start applies a JSON body longer than
// 7 bytes (or a chunked one) as the container's HostConfig, so an existing
// container can be started in the host user namespace without any create.

import { type Call } from '../../engine/envelope.ts';
import { contentLength, readJsonBody } from '../../engine/requestBody.ts';
import { isApiBelow, type Route } from '../../engine/routes.ts';
import type { Violation } from './types.ts';
import { usernsHostViolation } from './userns.ts';

// moby: "A non-nil json object is at least 7 characters."
const IGNORED_BODY_MAX = 7;

export function legacyStartViolation(call: Call, route: Route): Violation | null {
  if (!isApiBelow(route, '1.24')) return null;
  const version = route.apiVersion;
  const body = readJsonBody(call);
  if (body.kind === 'object') return usernsHostViolation(body.object);
  // JSON that is not an object decodes to no HostConfig or fails the call.
  if (body.kind === 'not-object') return null;
  if (body.kind === 'not-json') {
    return {
      rule: 'legacy-start-body',
      reason: `legacy start refused: API ${version} applies the body as HostConfig and it is not a single JSON value (${body.why})`,
    };
  }
  const length = contentLength(call);
  if (length !== null && length <= IGNORED_BODY_MAX) return null;
  return {
    rule: 'legacy-start-body',
    reason: `legacy start refused: API ${version} applies a start body as HostConfig and this one was not visible to userns-guard (${body.why})`,
  };
}

