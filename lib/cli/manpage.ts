import { VERSION } from '../version.js'
import { COMMANDS, synopsis } from './commands.js'

/** Text shown as it is in roff: backslashes escaped, a leading dot or quote neutralised. */
function verbatim (text: string): string {
  // The help texts quote commands in markdown backticks; roff shows them as they are, so they go.
  return text.trimEnd().split('\n').map(l => l.replace(/`/g, '').replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1')).join('\n')
}

/** Every environment variable rofiles-guard reads, with what it does. */
export const ENVIRONMENT: ReadonlyArray<[string, string]> = [
  ['DEBUG', 'rofiles-guard:* logs what happens, per hook (the server\'s log too); rofiles-guard:fuse adds libfuse\'s raw request trace.'],
  ['ROFILES_GUARD_NATIVE', '0: the TypeScript reference server (fuse-native, libfuse 2) serves the mount instead of the native core; for comparison, slower.'],
  ['ROFILES_GUARD_PASSTHROUGH', '0: the native core never asks the kernel for FUSE passthrough (as root it does by default).'],
  ['ROFILES_GUARD_FUSE_URING', 'off: the native core never takes the kernel\'s offer of FUSE over io_uring (kernel 6.14+, offered only where root wrote 1 to /sys/module/fuse/parameters/enable_uring) and talks through /dev/fuse.'],
  ['ROFILES_GUARD_FUSE_INLINE', 'off: every /dev/fuse request is handed to a worker thread, as in libfuse\'s own loop. By default the thread that reads a request serves it itself while requests come one at a time, and hands over when they overlap.'],
  ['ROFILES_GUARD_FUSE_THREADS', 'the most threads the native core serves /dev/fuse with (default 16; the bench compares thread models with it).'],
  ['ROFILES_GUARD_SERVER', 'set by rofiles-guard for its own server process (the mount\'s configuration, as JSON); never set it yourself.'],
  ['ROFILES_GUARD_STATS_FILE', 'a file the server writes the requests it has served to (by kind, as JSON) on SIGUSR1; the bench uses it.'],
  ['ROOTHOOK_ROOT, ROOTHOOK_NAME, ROOTHOOK_MODE', 'set for each hook: the new root as the hook sees it, the hook\'s name, the mode.'],
  ['ROFILES_GUARD_TEST_PKG, ROFILES_GUARD_TEST_URING, ROFILES_GUARD_RACE_SECONDS, ROFILES_GUARD_SOAK, ROFILES_GUARD_SOAK_RUNS, ROFILES_GUARD_BENCH_DIR', 'read by the test suite and the bench only (see docs/testing.md and README.md, Speed).']
]

/** Examples the man page shows; test/cli.test.ts checks that each names a command and options the CLI has. */
export const EXAMPLES: ReadonlyArray<[string, string]> = [
  ['Run the hooks of a directory against a new deployment, blocking the upgrade if one fails:', 'rofiles-guard run-hooks --root /ostree/deploy/os/deploy/abc.0 --hooks-dir /etc/rpm-ostree/roothooks.d'],
  ['A hook author\'s loop, as an ordinary user: check a commit out for the run, then remove it:', 'rofiles-guard run-hooks --repo repo --ref os --hooks-dir hooks --mode copyup'],
  ['Commit the hooks\' result on top of the base, then deploy it:', 'rofiles-guard commit-hooks --repo /ostree/repo --base os/stable --hooks-dir hooks --ref os/hooked\nostree admin deploy os/hooked'],
  ['Each hook as a layer of its own, four at a time:', 'rofiles-guard layer-hooks --repo /ostree/repo --base os/stable --hooks-dir hooks --ref os/layered --jobs 4'],
  ['Mount a checkout the way rofiles-fuse does, with copy-up:', 'rofiles-guard mount --copyup /var/tmp/root /run/guarded\numount /run/guarded']
]

/**
 * The man page rofiles-guard(1), made from the same texts as `--help` (lib/cli/commands.ts):
 * the package ships it as dist/man/rofiles-guard.1, which `npm i -g` installs for man(1).
 */
export async function manPage (): Promise<string> {
  const help = new Map(await Promise.all(COMMANDS.map(async c => [c.name, (await c.load()).help] as const)))
  const parts = [
    `.TH ROFILES-GUARD 1 "" "rofiles-guard ${VERSION}" "User Commands"`,
    '.SH NAME',
    'rofiles-guard \\- run hooks against a hardlinked ostree root through a FUSE guard',
    '.SH SYNOPSIS',
    ...COMMANDS.map(c => `.br\n${verbatim(synopsis(help.get(c.name)!))}`),
    '.br',
    'rofiles-guard --version',
    '.SH DESCRIPTION',
    'Image-based systems check out each new root as hardlinks into a content-addressed repository:',
    'writing to such a file in place corrupts the repository object. rofiles-guard mounts the new root',
    'through a FUSE layer that refuses changes to those objects (mode \\fBdeny\\fR), redirects them to a',
    'private copy (\\fBcopyup\\fR) or refuses every change (\\fBreadonly\\fR), runs hooks inside that mount',
    'and reports what each hook did. It runs as root, or as an ordinary user with access to /dev/fuse.',
    '.SH COMMANDS'
  ]
  for (const c of COMMANDS) {
    parts.push(`.SS ${c.name}`, c.summary, '.PP', '.nf', verbatim(help.get(c.name)!), '.fi')
  }
  parts.push(
    '.SH EXIT STATUS',
    '0 on success; 1 on a failure (a hook that failed, a mount that could not be made); 2 for a usage',
    'error; 130 or 143 after SIGINT or SIGTERM. Every error is one line on stderr.',
    '.SH ENVIRONMENT',
    ...ENVIRONMENT.flatMap(([name, what]) => ['.TP', `.B ${name}`, verbatim(what)]),
    '.SH EXAMPLES',
    ...EXAMPLES.flatMap(([what, cmd]) => ['.PP', verbatim(what), '.PP', '.nf', '.RS 4', verbatim(cmd), '.RE', '.fi']),
    '.SH SEE ALSO',
    '.BR rofiles-fuse (1),',
    '.BR ostree (1),',
    '.BR bwrap (1).',
    'The behaviour is specified in docs/spec.md, shipped with the package.'
  )
  return parts.join('\n') + '\n'
}

