import { MODES } from '../policy.js'
import { SANDBOXES } from '../hooks/sandbox.js'
import { ENGINES } from '../mount/engine.js'
import { COMMANDS, optionsOf } from './commands.js'
import { parse } from './args.js'

export const COMPLETION_HELP = `Usage: rofiles-guard completion

Prints the bash completion script for rofiles-guard: commands, each command's options, the
values of --mode, --sandbox and --engine, the refs of the --repo given for --base and --ref,
directories and files where an option takes one. Load it with

  source <(rofiles-guard completion)

or install it for every shell: rofiles-guard completion > /etc/bash_completion.d/rofiles-guard
`

/** What the word after an option is, by the placeholder its help gives it. */
function valueWords (placeholder: string): string | null {
  switch (placeholder) {
    case 'MODE': return `compgen -W "${[...MODES, 'read-only'].join(' ')}" -- "$cur"`
    case 'KIND': return `compgen -W "${SANDBOXES.join(' ')}" -- "$cur"`
    case 'ENGINE': return `compgen -W "${ENGINES.join(' ')}" -- "$cur"`
    case 'DIR': case 'REPO': return 'compgen -d -- "$cur"'
    // The refs of the repository named by --repo on the same command line.
    case 'REV': case 'REF': return 'compgen -W "$(_rofiles_guard_refs)" -- "$cur"'
    case 'FILE': return 'compgen -f -- "$cur"'
    default: return null // SECONDS and the like: nothing to offer
  }
}

/** The script, made from the commands' own --help texts. */
export async function completionScript (): Promise<string> {
  const helps = await Promise.all(COMMANDS.map(async c => ({ name: c.name, help: (await c.load()).help })))
  const takes = new Map<string, string>()
  for (const { help } of helps) {
    for (const m of help.matchAll(/(--[a-z][\w-]*) ([A-Z]+)\b/g)) takes.set(m[1]!, m[2]!)
  }
  const values = [...takes].map(([opt, ph]) => `    ${opt}) ${valueWords(ph) === null ? 'return ;;' : `COMPREPLY=($(${valueWords(ph)})); return ;;`}`)
  const perCommand = helps.map(({ name, help }) => `    ${name}) opts="${[...new Set([...optionsOf(help), "--help"])].join(" ")}" ;;`)
  return `# bash completion for rofiles-guard (made by \`rofiles-guard completion\`)
_rofiles_guard_refs () {
  local i repo=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in --repo) repo=\${COMP_WORDS[i+1]} ;; --repo=*) repo=\${COMP_WORDS[i]#--repo=} ;; esac
  done
  [ -n "$repo" ] && ostree refs --repo="$repo" 2>/dev/null
}
_rofiles_guard () {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${COMMANDS.map(c => c.name).join(' ')} version --help --version" -- "$cur"))
    return
  fi
  case "$prev" in
${values.join('\n')}
  esac
  case "$cur" in
    -*)
      case "\${COMP_WORDS[1]}" in
${perCommand.map(l => `    ${l}`).join('\n')}
        *) opts="--help" ;;
      esac
      COMPREPLY=($(compgen -W "$opts --version" -- "$cur"))
      ;;
  esac
}
complete -o default -o bashdefault -F _rofiles_guard rofiles-guard
`
}

export async function completionCommand (argv: string[]): Promise<number> {
  const { values } = parse('completion', argv, {}, [])
  if (values.help) { process.stdout.write(COMPLETION_HELP); return 0 }
  process.stdout.write(await completionScript())
  return 0
}
