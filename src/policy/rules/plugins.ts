// Managed plugins run as real root in the host user namespace with whatever
// mounts and capabilities their config asks for, so installing or
// reconfiguring one is a way out of the remapped namespace. The tar body of
// /plugins/create never reaches authorization plugins, so these routes are
// refused as a whole. Enabling, disabling, listing and inspecting already
// installed plugins stay allowed.

import type { Call } from '../../engine/envelope.ts';
import { fieldValues, objectsUnder } from '../../engine/goJson.ts';
import { readJsonBody } from '../../engine/requestBody.ts';
import type { Route } from '../../engine/routes.ts';
import type { Violation } from './types.ts';

const HOW_TO_ALLOW = 'start userns-guard with --allow-plugin-install to permit it';

export function pluginInstallViolation(route: Route): Violation {
  return refuse(`POST ${route.path}`);
}

// On experimental engines a swarm service with the "plugin" runtime installs
// a managed plugin on every node, so such service specs count as installs.
export function servicePluginViolation(call: Call, route: Route): Violation | null {
  const body = readJsonBody(call);
  if (body.kind !== 'object') {
    // Without the spec there is no telling whether it installs a plugin.
    return refuse(`POST ${route.path} whose body userns-guard cannot read (${body.why})`);
  }
  for (const task of objectsUnder(body.object, 'TaskTemplate')) {
    const runtime = fieldValues(task, 'Runtime').some((v) => typeof v === 'string' && v.trim().toLowerCase() === 'plugin');
    const pluginSpec = fieldValues(task, 'PluginSpec').some((v) => v !== null);
    if (runtime || pluginSpec) return refuse(`a swarm service with the plugin runtime (POST ${route.path})`);
  }
  return null;
}

function refuse(what: string): Violation {
  return {
    rule: 'plugin-install',
    reason: `installing or reconfiguring managed plugins is not allowed: they run as root in the host user namespace (${what}; ${HOW_TO_ALLOW})`,
  };
}
