/**
 * The commands of the CLI, in the order `--help`, the man page and the bash completion list
 * them. Each module is loaded only when its command runs (or its help is asked for).
 */
export type Run = (argv: string[]) => Promise<number>

export interface CommandInfo {
  name: string
  /** One line for `rofiles-guard --help` and the man page. */
  summary: string
  /** The command's own `--help` text (the source of the man page and the completion) and its runner. */
  load: () => Promise<{ help: string, run: Run }>
}

export const COMMANDS: readonly CommandInfo[] = [
  { name: 'mount', summary: 'mount a root through the guard; it serves in the background until unmounted', load: async () => { const m = await import('./mount.js'); return { help: m.MOUNT_HELP, run: m.mountCommand } } },
  { name: 'unmount', summary: 'unmount a rofiles-guard mount and wait for its server to exit', load: async () => { const m = await import('./mount.js'); return { help: m.UNMOUNT_HELP, run: m.unmountCommand } } },
  { name: 'run-hooks', summary: 'run a hooks directory against a root through the guard, and report what each hook did', load: async () => { const m = await import('./run-hooks.js'); return { help: m.RUN_HOOKS_HELP, run: m.runHooksCommand } } },
  { name: 'commit-hooks', summary: 'run hooks on a base commit and commit the result, with hooks.json; nothing when up to date', load: async () => { const m = await import('./commit-hooks.js'); return { help: m.COMMIT_HOOKS_HELP, run: m.commitHooksCommand } } },
  { name: 'layer-hooks', summary: 'run each hook on a base alone, in parallel, as a layer commit of its own; merge them', load: async () => { const m = await import('./layer-hooks.js'); return { help: m.LAYER_HOOKS_HELP, run: m.layerHooksCommand } } },
  { name: 'status', summary: 'the hooks recorded in each deployment of a sysroot', load: async () => { const m = await import('./status.js'); return { help: m.STATUS_HELP, run: m.statusCommand } } },
  { name: 'gc', summary: 'delete the refs commit-hooks made that no deployment uses, and prune', load: async () => { const m = await import('./gc.js'); return { help: m.GC_HELP, run: m.gcCommand } } },
  { name: 'report', summary: 'print a report that run-hooks --report saved', load: async () => { const m = await import('./report.js'); return { help: m.REPORT_HELP, run: m.reportCommand } } },
  { name: 'cleanup', summary: 'remove rofiles-guard mounts whose server is gone, and temporary mountpoints of runs that are gone', load: async () => { const m = await import('./cleanup.js'); return { help: m.CLEANUP_HELP, run: m.cleanupCommand } } },
  { name: 'demo', summary: 'run the example hooks against a real ostree repository, then remove it', load: async () => { const m = await import('./demo.js'); return { help: m.DEMO_HELP, run: m.demoCommand } } },
  { name: 'completion', summary: 'print the bash completion script (source <(rofiles-guard completion))', load: async () => { const m = await import('./completion.js'); return { help: m.COMPLETION_HELP, run: m.completionCommand } } }
]

/** A command's synopsis: its help's "Usage:" paragraph, on one line. */
export function synopsis (help: string): string {
  const para = help.slice(0, help.indexOf('\n\n') < 0 ? undefined : help.indexOf('\n\n'))
  return para.replace(/^Usage: /, '').split('\n').map(l => l.trim()).join(' ')
}

/** The long options a help text lists (lines starting "  --name" or "  -x, --name"). */
export function optionsOf (help: string): string[] {
  const out = new Set<string>()
  for (const line of help.split('\n')) {
    const m = /^\s{2,}(?:-\w, )?(--[a-z][\w-]*)/.exec(line)
    if (m) out.add(m[1]!)
  }
  return [...out]
}
