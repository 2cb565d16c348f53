// One policy, written in C (native/policy.c, what the native layer decides with) and in
// TypeScript (lib/policy.ts, the reference): every case of the table through both, and the
// tables of native/guard-abi.h equal to their TypeScript mirror (lib/native/abi.ts).
import { describe, expect, it } from 'vitest'
import { decide, MODES, type OpClass } from '../dist/index.js'
import { DECISION_CODES, MODE_CODES, OP_CLASS_CODES, OPEN_FLAGS, OUTCOMES, ST, STAT_SLOTS } from '../dist/native/abi.js'
import { sysops } from '../dist/native/sysops.js'

const CLASSES: OpClass[] = ['write-open', 'attr', 'namespace', 'mknod']

describe('the policy in C and in TypeScript', () => {
  for (const mode of MODES) {
    for (const cls of CLASSES) {
      for (const isObject of [false, true]) {
        it(`${mode}, ${cls}, ${isObject ? 'object' : 'not an object'}: ${decide(cls, mode, isObject)}`, () => {
          expect(sysops().decide(OP_CLASS_CODES[cls], MODE_CODES[mode], isObject)).toBe(DECISION_CODES[decide(cls, mode, isObject)])
        })
      }
    }
  }

  it('the header and the TypeScript tables agree', () => {
    expect(sysops().abi).toEqual({
      stat: ST,
      statSlots: STAT_SLOTS,
      modes: MODE_CODES,
      outcomes: OUTCOMES,
      openFlags: OPEN_FLAGS,
      decisions: DECISION_CODES,
      opClasses: OP_CLASS_CODES
    })
  })
})
