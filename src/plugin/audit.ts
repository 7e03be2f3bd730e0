// The audit trail: one JSON object per line on stderr, which journald keeps.
// Writing must never block or crash the server: a stalled reader makes lines
// queue in memory up to a bound, past which they are counted and dropped, and
// a closed pipe is ignored.

import type { Writable } from 'node:stream';
import type { Decision } from '../policy/decide.ts';
import { matchRoute } from '../policy/routeTable.ts';

export type Level = 'info' | 'warn' | 'error' | 'debug';

export interface AuditLog {
  decision(d: Decision): void;
  event(level: Level, msg: string, fields?: Record<string, unknown>): void;
}

// What may wait in the stream's buffer before lines are dropped.
const MAX_QUEUED_BYTES = 4 << 20;

export function createAuditLog(out: Writable, debug: boolean): AuditLog {
  let dropped = 0;
  out.on('error', () => {
    // EPIPE and friends: the reader is gone; nothing useful is left to do.
  });

  function write(record: Record<string, unknown>): void {
    if (out.destroyed || !out.writable) return;
    if (out.writableLength > MAX_QUEUED_BYTES) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      const note = { time: now(), level: 'warn', msg: 'audit lines dropped: the log reader is not keeping up', dropped };
      dropped = 0;
      out.write(line(note));
    }
    out.write(line(record));
  }

  return {
    decision(d) {
      if (d.decision === 'allow' && !d.exempt && !debug) return;
      write(decisionRecord(d));
    },
    event(level, msg, fields) {
      if (level === 'debug' && !debug) return;
      write({ time: now(), level, msg, ...fields });
    },
  };
}

// Only what an auditor needs to identify the call. Never bodies, Env values
// or headers: they carry secrets (registry auth, tokens).
export function decisionRecord(d: Decision): Record<string, unknown> {
  const record: Record<string, unknown> = {
    time: now(),
    level: d.decision === 'allow' ? (d.exempt ? 'warn' : 'debug') : d.decision === 'deny' ? 'warn' : 'info',
    decision: d.decision,
    rule: d.rule,
    reason: clip(d.exempt ? `exempt user; would have been refused: ${d.reason}` : d.reason),
    user: clip(d.call?.user ?? ''),
    authMethod: clip(d.call?.authMethod ?? ''),
    method: clip(d.call?.method ?? ''),
    uri: clip(d.call?.uri ?? ''),
    path: clip(d.route?.path ?? ''),
    apiVersion: d.route === null || d.route.apiVersion === null ? null : clip(d.route.apiVersion),
  };
  if (d.container !== null) record.container = d.container;
  if (d.detail !== null) record.detail = clip(d.detail);
  if (d.route !== null && d.call !== null && matchRoute(d.call.method, d.route.path)?.spec.name === 'container-create') {
    record.image = d.image === null ? null : clip(d.image);
    const name = new URLSearchParams(d.route.query).get('name');
    record.name = name === null ? null : clip(name);
  }
  return record;
}

// journald cuts lines longer than its LineMax (48 KiB by default) into
// several entries: a caller could then hide a denial from anyone reading
// the log as JSON just by sending a long URI. Every string the caller chose
// is capped so that, even if every character took JSON's longest escape
// (6 bytes), a whole line stays under that limit: 9 fields * 800 * 6 bytes
// is 43,200 bytes, plus the fixed keys.
export const MAX_FIELD_CHARS = 800;

function clip(s: string): string {
  if (s.length <= MAX_FIELD_CHARS) return s;
  return `${s.slice(0, MAX_FIELD_CHARS)}...[${s.length - MAX_FIELD_CHARS} more characters]`;
}

// As bytes: a stream counts a queued string in UTF-16 units, which would
// let up to three times MAX_QUEUED_BYTES wait in memory.
function line(record: Record<string, unknown>): Buffer {
  return Buffer.from(`${JSON.stringify(record)}\n`);
}

function now(): string {
  return new Date().toISOString();
}
