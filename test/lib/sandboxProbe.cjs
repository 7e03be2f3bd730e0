// Preloaded (NODE_OPTIONS=--require) into the packed userns-guard runtime,
// started by a copy of userns-guard.service, to show what a process in the
// service's sandbox can do: the engine lookups the plugin makes, the host
// paths it examines, and what stays out of reach. The plugin's own main
// (run with --version) calls process.exit at once; the probe holds that exit
// until it is done and prints one line: SANDBOX-PROBE {json}.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const ENGINE = process.env.PROBE_ENGINE_SOCKET || '/run/docker.sock';
const out = {};

function get(path) {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: ENGINE, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(body);
        } catch {
          // left null
        }
        resolve({ status: res.statusCode, json });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => resolve({ error: err.code || String(err) }));
  });
}

function attempt(fn) {
  try {
    return fn();
  } catch (err) {
    return { error: err.code || String(err) };
  }
}

const done = (async () => {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)[1].trim();
  out.uid = field('Uid').split(/\s+/)[0];
  out.capEff = field('CapEff');
  out.capBnd = field('CapBnd');
  out.noNewPrivs = field('NoNewPrivs');

  const info = await get('/v1.41/info');
  out.info = info.json ? { status: info.status, serverVersion: info.json.ServerVersion, securityOptions: info.json.SecurityOptions, authorization: info.json.Plugins && info.json.Plugins.Authorization } : info;
  if (process.env.PROBE_CONTAINER) {
    const c = await get(`/v1.41/containers/${process.env.PROBE_CONTAINER}/json`);
    out.container = c.json ? { status: c.status, binds: c.json.HostConfig && c.json.HostConfig.Binds, mounts: (c.json.Mounts || []).map((m) => m.Source) } : c;
  }
  if (process.env.PROBE_VOLUME) {
    const v = await get(`/v1.41/volumes/${process.env.PROBE_VOLUME}`);
    out.volume = v.json ? { status: v.status, name: v.json.Name, mountpoint: v.json.Mountpoint } : v;
  }

  out.paths = {};
  for (const p of (process.env.PROBE_PATHS || '').split(':').filter(Boolean)) {
    out.paths[p] = {
      lstat: attempt(() => {
        const st = fs.lstatSync(p);
        return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8), dir: st.isDirectory(), symlink: st.isSymbolicLink() };
      }),
      realpath: attempt(() => fs.realpathSync(p)),
      readdir: attempt(() => (fs.statSync(p).isDirectory() ? fs.readdirSync(p).length : null)),
    };
  }
  out.subuid = attempt(() => fs.readFileSync('/etc/subuid', 'utf8'));
  out.writes = {};
  for (const p of (process.env.PROBE_WRITES || '').split(':').filter(Boolean)) {
    out.writes[p] = attempt(() => {
      fs.writeFileSync(p, 'probe\n');
      fs.rmSync(p);
      return 'written';
    });
  }
  // Every mount point the process sees, and whether it can create a file at its top.
  out.writableMounts = [];
  const mountPoints = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))));
  for (const mp of new Set(mountPoints)) {
    const file = `${mp.replace(/\/$/, '')}/.ug-sandbox-probe-${process.pid}`;
    try {
      fs.closeSync(fs.openSync(file, 'wx'));
      fs.rmSync(file);
      out.writableMounts.push(mp);
    } catch {
      // refused: what the sandbox should say everywhere
    }
  }
  out.inet = await new Promise((resolve) => {
    let s;
    try {
      s = net.connect(9, '127.0.0.1');
    } catch (err) {
      resolve(err.code || String(err));
      return;
    }
    s.on('error', (err) => resolve(err.code || String(err)));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
})().catch((err) => {
  out.error = String((err && err.stack) || err);
});

const exit = process.exit.bind(process);
process.exit = (code) => {
  done.finally(() => {
    process.stdout.write(`SANDBOX-PROBE ${JSON.stringify(out)}\n`);
    exit(code);
  });
};
