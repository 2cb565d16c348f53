import { VERSION } from '../version.js'
import { COMMANDS, synopsis } from './commands.js'

/** Text shown as it is in roff: backslashes escaped, a leading dot or quote neutralised. */
function verbatim (text: string): string {
  return text.trimEnd().split('\n').map(l => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1')).join('\n')
}

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
    '.TP',
    '.B DEBUG',
    'rofiles-guard:* logs per hook; rofiles-guard:fuse adds libfuse\'s raw request trace.',
    '.SH SEE ALSO',
    '.BR rofiles-fuse (1),',
    '.BR ostree (1),',
    '.BR bwrap (1).',
    'The behaviour is specified in docs/spec.md, shipped with the package.'
  )
  return parts.join('\n') + '\n'
}

