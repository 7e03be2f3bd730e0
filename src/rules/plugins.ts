// Managed plugins run as real root in the host user namespace with whatever
// mounts and capabilities their config asks for, so installing or
// reconfiguring one is a way out of the remapped namespace. The tar body of
// /plugins/create never reaches authorization plugins, so these routes are
// refused as a whole. Enabling, disabling, listing and inspecting already
// installed plugins stay allowed.

import { ROUTES, type Route } from '../routes.ts';
import type { Violation } from './types.ts';

const INSTALL_ROUTES = [ROUTES.pluginPull, ROUTES.pluginCreate, ROUTES.pluginUpgrade, ROUTES.pluginSet];

export function pluginInstallViolation(route: Route): Violation | null {
  if (!INSTALL_ROUTES.some((r) => r.test(route.path))) return null;
  return {
    rule: 'plugin-install',
    reason: `installing or reconfiguring managed plugins is not allowed: they run as root in the host user namespace (POST ${route.path}; start userns-guard with --allow-plugin-install to permit it)`,
  };
}
