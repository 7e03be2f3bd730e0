// The audit trail: one JSON object per line on stderr, which journald keeps.
// Writing must never block or crash the server: a stalled reader makes lines
// queue in memory up to a bound, past which they are counted and dropped, and
// a closed pipe is ignored.

import type { Writable } from 'node:stream';
import type { Decision } from './policy.ts';
import { ROUTES } from './routes.ts';

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
      out.write(`${JSON.stringify(note)}\n`);
    }
    out.write(`${JSON.stringify(record)}\n`);
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
    reason: d.exempt ? `exempt user; would have been refused: ${d.reason}` : d.reason,
    user: d.call?.user ?? '',
    authMethod: d.call?.authMethod ?? '',
    method: d.call?.method ?? '',
    uri: d.call?.uri ?? '',
    path: d.route?.path ?? '',
    apiVersion: d.route?.apiVersion ?? null,
  };
  if (d.route !== null && ROUTES.containerCreate.test(d.route.path)) {
    record.image = d.image;
    record.name = new URLSearchParams(d.route.query).get('name');
  }
  return record;
}

function now(): string {
  return new Date().toISOString();
}
