// Stable rule ids: they appear in the audit log and operators query by them.
export type CoreRuleId =
  | 'bad-envelope'
  | 'body-not-visible'
  | 'body-not-json'
  | 'userns-host'
  | 'legacy-start-body'
  | 'plugin-install'
  // Rules on things that already exist, judged with facts from the engine.
  | 'lookup-failed'
  | 'no-such-container'
  | 'host-userns-container'
  | 'archive-host-mount'
  | 'archive-copy-uidgid'
  | 'checkpoint-dir'
  | 'name-in-flux'
  // Host paths the engine would create or fill as host root.
  | 'bind-source-creation'
  | 'volume-copy-up'
  | 'service-host-path';

export type HardeningRuleId =
  | 'privileged'
  | 'cap-add'
  | 'security-opt'
  | 'root-user'
  | 'host-namespaces'
  | 'devices'
  | 'docker-socket';

export type RuleId = CoreRuleId | HardeningRuleId;

export interface Violation {
  readonly rule: RuleId;
  // One line: what was refused and why.
  readonly reason: string;
  // For the audit trail: the container the call acted on (full id), and the
  // mount, mode or path that decided it.
  readonly container?: string;
  readonly detail?: string;
}
