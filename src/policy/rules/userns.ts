// The host user namespace check. The engine puts a container in the host user
// namespace only for the exact string "host" (moby's UsernsMode.IsHost), read
// from HostConfig or, when there is no HostConfig object, from the deprecated
// top-level fields. Refusing when any candidate says "host" covers Go's
// duplicate-key, merge and null semantics without modelling them.

import { fieldValues, objectsUnder, type JObject } from '../../engine/goJson.ts';
import type { Violation } from './types.ts';

export function usernsHostViolation(body: JObject): Violation | null {
  for (const hostConfig of objectsUnder(body, 'HostConfig')) {
    if (fieldValues(hostConfig, 'UsernsMode').includes('host')) {
      return { rule: 'userns-host', reason: 'host user namespace is not allowed (HostConfig.UsernsMode=host)' };
    }
  }
  if (fieldValues(body, 'UsernsMode').includes('host')) {
    return { rule: 'userns-host', reason: 'host user namespace is not allowed (top-level UsernsMode=host)' };
  }
  return null;
}
