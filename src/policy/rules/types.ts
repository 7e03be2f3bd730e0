// Stable rule ids: they appear in the audit log and operators query by them.
export type CoreRuleId =
  | 'bad-envelope'
  | 'body-not-visible'
  | 'body-not-json'
  | 'userns-host'
  | 'legacy-start-body'
  | 'plugin-install';

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
}
