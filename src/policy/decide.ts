// The decision flow: one AuthZReq envelope in, one decision out. Pure, so it
// can be tested without a socket; the server only moves bytes and, for the
// few routes that act on something that already exists, has the facts
// gathered (src/facts/) before the second step.
//
//   envelope -> call -> route -> ROUTE_TABLE entry -> asks
//   decide():      the rules that need only the request
//   judgeFacts():  the rules that need facts from the engine or the host
//
// Most calls are GETs that match no table entry and leave after the route
// is known, without touching the body.

import { header, readEnvelope, type Call, type EnvelopeBytes } from '../engine/envelope.ts';
import { fieldValues, lastScalar, type JObject } from '../engine/goJson.ts';
import { contentLength, mediaType, readJsonBody } from '../engine/requestBody.ts';
import { isApiBelow, parseRequestUri, queryValues, type Route } from '../engine/routes.ts';
import { asksOf, bindDevicesOf, needsOf, NOTHING, type Asks } from './asks.ts';
import { needsNothing, type FactNeeds, type Facts } from './facts.ts';
import { matchRoute, type RouteMatch } from './routeTable.ts';
import { engineRootViolation, targetLookup } from './rules/engineRoot.ts';
import {
  buildHardeningViolation, hardeningBodyViolation, hardeningViolation, legacyStartHardeningViolation, type EnabledRules,
} from './rules/hardening.ts';
import { hostPathViolation, serviceHostPathViolation } from './rules/hostPaths.ts';
import { legacyStartViolation } from './rules/legacyStart.ts';
import { pluginInstallViolation, servicePluginViolation } from './rules/plugins.ts';
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
  // The container the call acted on, and the mount, mode or path that
  // decided it (audit trail).
  readonly container: string | null;
  readonly detail: string | null;
  readonly asks: Asks;
  // What judgeFacts() still needs looked up; nothing for most calls, and
  // nothing once a rule has already refused.
  readonly needs: FactNeeds;
}

interface Finding {
  readonly violation: Violation | null;
  readonly image: string | null;
}

const NOTHING_FOUND: Finding = { violation: null, image: null };
const NO_NEEDS: FactNeeds = { containers: [], execs: [], volumes: [], paths: [] };

export function decide(envelope: EnvelopeBytes, options: PolicyOptions): Decision {
  const read = readEnvelope(envelope);
  if (!read.ok) return refuseEnvelope(read.error, options);
  const call = read.call;
  const parsed = parseRequestUri(call.uri);
  if (!parsed.ok) {
    const reason = `request refused: its RequestUri cannot be routed (${parsed.error})`;
    return conclude(call, null, NOTHING, { violation: { rule: 'bad-envelope', reason }, image: null }, options);
  }
  const route = parsed.route;
  const match = matchRoute(call.method, route.path);
  const asks = asksOf(route, match, () => readJsonBody(call));
  return conclude(call, route, asks, violationFor(call, route, match, options), options);
}

// A call the server could not even read (over the size bound) is refused
// like any other malformed envelope. The reason names the refusal too: the
// Docker client shows it as is.
export function refuseEnvelope(reason: string, options: PolicyOptions): Decision {
  return conclude(null, null, NOTHING, { violation: { rule: 'bad-envelope', reason: `request refused: ${reason}` }, image: null }, options);
}

// The rules that need only the request, by the table's route name.
function violationFor(call: Call, route: Route, match: RouteMatch | null, options: PolicyOptions): Finding {
  if (match === null) return NOTHING_FOUND;
  const deny = options.deny;
  const only = (violation: Violation | null): Finding => ({ violation, image: null });
  switch (match.spec.name) {
    case 'container-create':
      return createFinding(call, options);
    case 'container-start':
      return only(legacyStartViolation(call, route) ?? (isApiBelow(route, '1.24') ? legacyStartHardeningViolation(call, deny) : null));
    case 'exec-create':
      return only(hardeningBodyViolation(call, 'exec', deny));
    case 'volume-create':
      return only(hardeningBodyViolation(call, 'volume-create', deny));
    case 'service-create':
    case 'service-update':
      return only(serviceFinding(call, route, options));
    case 'plugin-install':
      return only(options.allowPluginInstall ? null : pluginInstallViolation(route));
    case 'build':
      return only(buildHardeningViolation(call, route, deny));
    case 'buildkit-grpc':
      return only(hardeningViolation({ kind: 'buildkit-grpc' }, deny));
    case 'swarm-join':
      return only(hardeningViolation({ kind: 'swarm-join' }, deny));
    case 'container-archive':
      return only(copyOwnershipViolation(call, route));
    case 'container-rename':
      return only(hiddenFormViolation(call, 'rename', 'the new name'));
    case 'container-kill':
      return only(hiddenFormViolation(call, 'kill', 'the signal'));
    case 'container-checkpoint':
      return only(checkpointDirViolation(call, route));
    default:
      return NOTHING_FOUND;
  }
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

function serviceFinding(call: Call, route: Route, options: PolicyOptions): Violation | null {
  const hardening = hardeningBodyViolation(call, 'service', options.deny);
  if (hardening !== null) return hardening;
  const plugin = options.allowPluginInstall ? null : servicePluginViolation(call, route);
  if (plugin !== null) return plugin;
  const body = readJsonBody(call);
  return body.kind === 'object' ? serviceHostPathViolation(body.object) : null;
}

// copyUIDGID makes the engine chown extracted files to the container user's
// ids as they are, without remapping: with User root, host-root-owned files
// (setuid bits kept) land wherever the archive goes. BoolValue semantics.
function copyOwnershipViolation(call: Call, route: Route): Violation | null {
  if (call.method.toUpperCase() !== 'PUT') return null;
  const asked = queryValues(route.query, 'copyUIDGID').some((v) => !['', '0', 'no', 'false', 'none'].includes(v.trim().toLowerCase()));
  if (asked) {
    return {
      rule: 'archive-copy-uidgid',
      reason: "docker cp refused: copyUIDGID (docker cp -a) makes the engine give copied files the container user's ids without remapping them, so a container running as root gets real-root-owned files; copy without -a",
    };
  }
  return hiddenFormViolation(call, 'docker cp', 'copyUIDGID');
}

// These handlers read their query parameters through Go's ParseForm, which
// also reads a urlencoded or multipart body the engine never forwards.
function hiddenFormViolation(call: Call, what: string, field: string): Violation | null {
  const type = mediaType(header(call, 'Content-Type') ?? '');
  if (type !== 'application/x-www-form-urlencoded' && type !== 'multipart/form-data') return null;
  return {
    rule: 'body-not-visible',
    reason: `${what} refused: the engine would read ${field} from a ${type} body, which it does not forward to userns-guard; pass it in the query`,
  };
}

// Experimental engines' checkpoint routes take a host directory to create,
// list or remove as root: in the query (dir), or in a create's JSON body
// (CheckpointDir).
function checkpointDirViolation(call: Call, route: Route): Violation | null {
  const refuse: Violation = {
    rule: 'checkpoint-dir',
    reason: 'refused: a checkpoint directory is a host path the engine would create, read or remove as root; use the default checkpoint location',
  };
  if (queryValues(route.query, 'dir').length > 0 || queryValues(route.query, 'checkpoint-dir').length > 0) return refuse;
  if (call.method.toUpperCase() === 'POST' && !(call.body === null && contentLength(call) === 0)) {
    const body = readJsonBody(call);
    if (body.kind !== 'object') return { ...refuse, reason: `refused: a checkpoint create whose body userns-guard cannot read (${body.kind === 'not-visible' ? body.why : 'not one JSON object'}) may name a host directory` };
    if (fieldValues(body.object, 'CheckpointDir').some((v) => typeof v === 'string' && v !== '')) return refuse;
  }
  return hiddenFormViolation(call, 'checkpoint', 'the checkpoint directory');
}

function finding(image: string | null, rule: RuleId, reason: string): Finding {
  return { violation: { rule, reason }, image };
}

function imageOf(body: JObject): string | null {
  const image = lastScalar(body, 'Image');
  return typeof image === 'string' ? image : null;
}

// ---------------------------------------------------------------------------
// With facts

// What a call still needs once the first round of facts is in: the paths a
// start re-creates, and the volumes behind a container's mounts or a
// create's named volumes (their bind devices, in turn).
export function needsAfter(d: Decision, facts: Facts): FactNeeds {
  const asks = d.asks;
  const target = asks.target === null ? undefined : targetLookup(asks.target, facts);
  const container = target?.kind === 'found' ? target.value : null;
  const volumes: string[] = [];
  const paths: string[] = [];
  if (container !== null && asks.target !== null) {
    if (asks.target.actions.includes('start')) paths.push(...container.createdBindSources);
    if (asks.target.actions.includes('files')) {
      volumes.push(...container.mounts.filter((m) => m.type === 'volume' && m.driver === 'local').map((m) => m.name));
    }
  }
  for (const v of asks.volumes) {
    if (v.name === null || v.nocopy || v.inlineOptions.length > 0) continue;
    const found = facts.volumes.get(v.name);
    if (found?.kind === 'found' && found.value.driver === 'local') paths.push(...bindDevicesOf(found.value.options));
  }
  return {
    containers: [],
    execs: [],
    volumes: volumes.filter((n) => !facts.volumes.has(n)),
    paths: paths.filter((p) => !facts.paths.has(p)),
  };
}

// The rules that judge what already exists. Called with every fact the
// needs asked for; a fact that could not be learnt refuses.
export function judgeFacts(d: Decision, facts: Facts, options: PolicyOptions): Decision {
  if (d.rule !== null || d.call === null) return d;
  const asks = d.asks;
  const target = asks.target === null ? undefined : targetLookup(asks.target, facts);
  const started = target?.kind === 'found' && asks.target!.actions.includes('start') ? target.value : null;
  const creates = asks.target === null;
  const violation =
    engineRootViolation(asks, facts) ?? (creates || started !== null ? hostPathViolation(asks, facts, started) : null);
  return conclude(d.call, d.route, asks, { violation, image: d.image }, options, NO_NEEDS);
}

// A refusal found outside the pure rules (names changing under a call),
// concluded like any other: exempt users and --audit-only apply.
export function overrule(d: Decision, violation: Violation, options: PolicyOptions): Decision {
  return conclude(d.call, d.route, d.asks, { violation, image: d.image }, options, NO_NEEDS);
}

export function needsFactsFirst(d: Decision): boolean {
  return d.rule === null && !needsNothing(d.needs);
}

function conclude(
  call: Call | null,
  route: Route | null,
  asks: Asks,
  found: Finding,
  options: PolicyOptions,
  needs: FactNeeds = needsOf(asks),
): Decision {
  const v = found.violation;
  const base = {
    call,
    route,
    image: found.image,
    asks,
    container: v?.container ?? null,
    detail: v?.detail ?? null,
    needs: v === null ? needs : NO_NEEDS,
  };
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
