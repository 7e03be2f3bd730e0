// The one table from the engine's routes to what the policy reads of them.
// Every route any rule cares about is here, matched as the engine's router
// matches it (exact method, `{name:.*}` as any run of characters but a
// newline), with how its body is read and what the engine resolves from its
// path. Adding a route touches this table and, at most, one rule.
//
// Sources: moby api/server/router/{container,volume,plugin,swarm,build,
// session,system}/ at v20.10.24, v26.1.5 and v28.5.2.

// What the engine does to an existing container on the caller's behalf.
export type TargetAction =
  // runs a process in it (exec create, and exec start through the exec)
  | 'run'
  // feeds input to its processes (attach, exec start)
  | 'input'
  // starts it, or lets its processes run again
  | 'start'
  // reads or writes files in it as host root, its mounts included
  | 'files'
  // changes its configuration (restart policy: engine starts without a call)
  | 'update'
  // signals it: a kill resumes a paused container, and a signal other than
  // KILL can end in a restart by its restart policy
  | 'signal';

export type RouteName =
  | 'container-create'
  | 'container-start'
  | 'container-restart'
  | 'container-unpause'
  | 'container-update'
  | 'container-attach'
  | 'container-attach-ws'
  | 'container-archive'
  | 'container-copy'
  | 'container-rename'
  | 'container-kill'
  | 'container-checkpoint'
  | 'exec-create'
  | 'exec-start'
  | 'volume-create'
  | 'plugin-install'
  | 'service-create'
  | 'service-update'
  | 'build'
  | 'buildkit-grpc'
  | 'swarm-join';

export interface RouteSpec {
  readonly name: RouteName;
  readonly methods: readonly string[];
  // Capture group 1, where there is one, is the path parameter the engine
  // resolves: a container reference, or an exec id for exec-start.
  readonly path: RegExp;
  // 'json': the rules read the forwarded JSON body (and refuse one they
  // cannot see where it matters); 'ignored': the body changes nothing.
  readonly body: 'json' | 'ignored';
  readonly target: 'container' | 'exec' | null;
  readonly actions: readonly TargetAction[];
}

const NAME = '([^\\n]*)';
const on = (suffix: string) => new RegExp(`^/containers/${NAME}/${suffix}$`);

export const ROUTE_TABLE: readonly RouteSpec[] = [
  { name: 'container-create', methods: ['POST'], path: /^\/containers\/create$/, body: 'json', target: null, actions: [] },
  // Below API 1.24 the start body is applied as HostConfig (legacy-start).
  { name: 'container-start', methods: ['POST'], path: on('start'), body: 'json', target: 'container', actions: ['start'] },
  { name: 'container-restart', methods: ['POST'], path: on('restart'), body: 'ignored', target: 'container', actions: ['start'] },
  { name: 'container-unpause', methods: ['POST'], path: on('unpause'), body: 'ignored', target: 'container', actions: ['start'] },
  { name: 'container-update', methods: ['POST'], path: on('update'), body: 'ignored', target: 'container', actions: ['update'] },
  { name: 'container-attach', methods: ['POST'], path: on('attach'), body: 'ignored', target: 'container', actions: ['input'] },
  { name: 'container-attach-ws', methods: ['GET'], path: on('attach/ws'), body: 'ignored', target: 'container', actions: ['input'] },
  // docker cp: HEAD stats a path (X-Docker-Container-Path-Stat), GET reads,
  // PUT extracts a tar; all resolve paths through the container's mounts.
  { name: 'container-archive', methods: ['HEAD', 'GET', 'PUT'], path: on('archive'), body: 'ignored', target: 'container', actions: ['files'] },
  // The pre-1.20 copy route; 20.10 still serves it below API 1.24.
  { name: 'container-copy', methods: ['POST'], path: on('copy'), body: 'ignored', target: 'container', actions: ['files'] },
  { name: 'container-kill', methods: ['POST'], path: on('kill'), body: 'ignored', target: 'container', actions: ['signal'] },
  // Experimental engines only: create, list and remove take a host directory.
  { name: 'container-checkpoint', methods: ['POST', 'GET'], path: on('checkpoints'), body: 'json', target: null, actions: [] },
  { name: 'container-checkpoint', methods: ['DELETE'], path: new RegExp(`^/containers/${NAME}/checkpoints/([^\\n]*)$`), body: 'ignored', target: null, actions: [] },
  { name: 'container-rename', methods: ['POST'], path: on('rename'), body: 'ignored', target: null, actions: [] },
  { name: 'exec-create', methods: ['POST'], path: on('exec'), body: 'json', target: 'container', actions: ['run'] },
  { name: 'exec-start', methods: ['POST'], path: new RegExp(`^/exec/${NAME}/start$`), body: 'ignored', target: 'exec', actions: ['run', 'input'] },
  { name: 'volume-create', methods: ['POST'], path: /^\/volumes\/create$/, body: 'json', target: null, actions: [] },
  { name: 'plugin-install', methods: ['POST'], path: /^\/plugins\/(?:pull|create)$/, body: 'ignored', target: null, actions: [] },
  { name: 'plugin-install', methods: ['POST'], path: new RegExp(`^/plugins/${NAME}/(?:upgrade|set)$`), body: 'ignored', target: null, actions: [] },
  { name: 'service-create', methods: ['POST'], path: /^\/services\/create$/, body: 'json', target: null, actions: [] },
  { name: 'service-update', methods: ['POST'], path: new RegExp(`^/services/${NAME}/update$`), body: 'json', target: null, actions: [] },
  { name: 'build', methods: ['POST'], path: /^\/build$/, body: 'ignored', target: null, actions: [] },
  // BuildKit's own API (buildx), tunnelled past authorization.
  { name: 'buildkit-grpc', methods: ['POST'], path: /^\/grpc$/, body: 'ignored', target: null, actions: [] },
  { name: 'swarm-join', methods: ['POST'], path: /^\/swarm\/(?:init|join)$/, body: 'ignored', target: null, actions: [] },
];

export interface RouteMatch {
  readonly spec: RouteSpec;
  // The path parameter (container reference or exec id); '' when none.
  readonly param: string;
}

// Methods compare upper-cased: the engine's router matches them exactly, so
// this can only match more than the engine does, never less.
export function matchRoute(method: string, path: string): RouteMatch | null {
  const m = method.toUpperCase();
  for (const spec of ROUTE_TABLE) {
    if (!spec.methods.includes(m)) continue;
    const found = spec.path.exec(path);
    if (found !== null) return { spec, param: found[1] ?? '' };
  }
  return null;
}
