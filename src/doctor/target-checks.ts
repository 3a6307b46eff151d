import { TargetError, targetLabel, type EdgeTarget, type TargetCheckResult } from '../targets/edge-target.ts';
import { errorMessage } from '../util/errors.ts';
import { fail, pass, warn, type CheckResult } from './check-result.ts';

/**
 * Checks a registry backend (MikroTik, Cloudflare, …) the way the daemon's every full pass does,
 * through its own `check()`: an error stops enforcement (FAIL), a warning is worth fixing (WARN,
 * e.g. a list no rule drops from), the facts say what was found. Reads only.
 */
export async function checkTarget(target: EdgeTarget): Promise<CheckResult[]> {
  const scope = targetLabel(target);
  let result: TargetCheckResult;
  try {
    result = await target.check();
  } catch (error) {
    if (error instanceof TargetError && error.kind !== 'retry') {
      return [pass('target.reachable', scope, 'answers'), failing('target.check', scope, error.message)];
    }
    return [
      fail(
        'target.reachable',
        scope,
        `cannot reach it: ${errorMessage(error)}`,
        `check the ${target.kind} target's address (url=, or its environment default): scheme, host, port, TLS; that the service answers there and no rule blocks edgeban`,
      ),
    ];
  }
  const results: CheckResult[] = [pass('target.reachable', scope, 'answers')];
  for (const error of result.errors) results.push(failing('target.check', scope, error));
  if (result.errors.length === 0) results.push(pass('target.check', scope, 'the list exists and the credentials may use it'));
  for (const warning of result.warnings) {
    const { message, fix } = splitFix(warning);
    results.push(warn('target.warning', scope, message, fix));
  }
  const facts = Object.entries(result.facts)
    .map(([key, value]) => `${key}=${value}`)
    .join(', ');
  if (facts !== '') results.push(pass('target.facts', scope, facts));
  return results;
}

function failing(id: string, scope: string, text: string): CheckResult {
  const { message, fix } = splitFix(text);
  return fail(id, scope, message, fix);
}

/**
 * A backend's message names its fix after its last `: ` outside parentheses ("no drop rule
 * matches list x: add one (README …)"); without one, the whole message is the fix's guide.
 */
export function splitFix(text: string): { message: string; fix: string } {
  let depth = 0;
  let at = -1;
  for (let i = 0; i < text.length - 1; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === ':' && text[i + 1] === ' ' && depth === 0) at = i;
  }
  if (at <= 0 || at + 2 >= text.length) return { message: text, fix: 'do what the message names, then run `edgeban doctor` again' };
  return { message: text.slice(0, at), fix: text.slice(at + 2) };
}
