// The decision flow: one AuthZReq envelope in, one decision out. Pure, so it
// can be tested without a socket; the server only moves bytes.
//
// Rules plug in per route in `violationFor`. Most calls are GETs and leave
// after the route is known, without touching the body.

import { readEnvelope, type Call } from '../engine/envelope.ts';
import { lastScalar, type JObject } from '../engine/goJson.ts';
import { readJsonBody } from '../engine/requestBody.ts';
import { parseRequestUri, ROUTES, type Route } from '../engine/routes.ts';
import { hardeningRouteViolation, hardeningViolation, type EnabledRules } from './rules/hardening.ts';
import { legacyStartViolation } from './rules/legacyStart.ts';
import { pluginInstallViolation } from './rules/plugins.ts';
import type { RuleId, Violation } from './rules/types.ts';
import { usernsHostViolation } from './rules/userns.ts';

export interface PolicyOptions {
  readonly allowPluginInstall: boolean;
  readonly auditOnly: boolean;
  // Users (TLS client certificate common names) exempt from every rule.
  readonly allowUsers: ReadonlySet<string>;
  // Opt-in hardening rules, each with the flag that enabled it.
  readonly deny: EnabledRules;
}

export const DEFAULT_POLICY: PolicyOptions = {
  allowPluginInstall: false,
  auditOnly: false,
  allowUsers: new Set(),
  deny: new Map(),
};

export interface Decision {
  readonly allow: boolean;
  readonly decision: 'allow' | 'deny' | 'would-deny';
  // The rule that refused the call, would have (audit-only), or that the
  // user was exempt from; null when no rule applied.
  readonly rule: RuleId | null;
  readonly reason: string;
  readonly exempt: boolean;
  readonly call: Call | null;
  readonly route: Route | null;
  // The image of a container create, for the audit trail.
  readonly image: string | null;
}

interface Finding {
  readonly violation: Violation | null;
  readonly image: string | null;
}

const NOTHING: Finding = { violation: null, image: null };

export function decide(envelope: Buffer | string, options: PolicyOptions): Decision {
  const read = readEnvelope(envelope);
  if (!read.ok) return refuseEnvelope(read.error, options);
  const call = read.call;
  const parsed = parseRequestUri(call.uri);
  if (!parsed.ok) {
    const reason = `request refused: its RequestUri cannot be routed (${parsed.error})`;
    return conclude(call, null, { violation: { rule: 'bad-envelope', reason }, image: null }, options);
  }
  return conclude(call, parsed.route, violationFor(call, parsed.route, options), options);
}

// A call the server could not even read (over the size bound) is refused
// like any other malformed envelope. The reason names the refusal too: the
// Docker client shows it as is.
export function refuseEnvelope(reason: string, options: PolicyOptions): Decision {
  return conclude(null, null, { violation: { rule: 'bad-envelope', reason: `request refused: ${reason}` }, image: null }, options);
}

// The router matches methods exactly; only POST routes change anything the
// rules care about.
function violationFor(call: Call, route: Route, options: PolicyOptions): Finding {
  if (call.method.toUpperCase() !== 'POST') return NOTHING;
  const path = route.path;
  if (ROUTES.containerCreate.test(path)) return createFinding(call, options);
  const violation =
    (ROUTES.containerStart.test(path) ? legacyStartViolation(call, route) : null) ??
    hardeningRouteViolation(call, route, options.deny) ??
    (options.allowPluginInstall ? null : pluginInstallViolation(call, route));
  return { violation, image: null };
}

function createFinding(call: Call, options: PolicyOptions): Finding {
  const body = readJsonBody(call);
  if (body.kind === 'not-visible') {
    return finding(null, 'body-not-visible', `container create refused: its body was not visible to userns-guard (${body.why})`);
  }
  if (body.kind !== 'object') {
    return finding(null, 'body-not-json', `container create refused: its body is not a single JSON object (${body.why})`);
  }
  const image = imageOf(body.object);
  const violation =
    usernsHostViolation(body.object) ?? hardeningViolation({ kind: 'create', body: body.object }, options.deny);
  return { violation, image };
}

function finding(image: string | null, rule: RuleId, reason: string): Finding {
  return { violation: { rule, reason }, image };
}

function imageOf(body: JObject): string | null {
  const image = lastScalar(body, 'Image');
  return typeof image === 'string' ? image : null;
}

function conclude(call: Call | null, route: Route | null, found: Finding, options: PolicyOptions): Decision {
  const v = found.violation;
  const base = { call, route, image: found.image };
  if (v === null) return { ...base, allow: true, decision: 'allow', rule: null, reason: '', exempt: false };
  // The engine sets User only from a verified TLS client certificate; calls
  // on the unix socket carry none and so can never be exempt.
  if (call !== null && call.user !== '' && options.allowUsers.has(call.user)) {
    return { ...base, allow: true, decision: 'allow', rule: v.rule, reason: v.reason, exempt: true };
  }
  if (options.auditOnly) {
    return { ...base, allow: true, decision: 'would-deny', rule: v.rule, reason: v.reason, exempt: false };
  }
  return { ...base, allow: false, decision: 'deny', rule: v.rule, reason: v.reason, exempt: false };
}
