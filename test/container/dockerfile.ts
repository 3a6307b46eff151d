// A small Dockerfile and .dockerignore reader, enough to check the image contract statically
// (there is no Docker engine on the machines that run the tests).

export interface Instruction {
  keyword: string;
  /** --name=value flags before the arguments (FROM --platform, COPY --from, HEALTHCHECK --interval…). */
  flags: Record<string, string>;
  /** The arguments after the flags, as written. */
  args: string;
  /** The arguments as an argv when written in exec (JSON array) form, else null. */
  exec: string[] | null;
  line: number;
}

export interface Stage {
  image: string;
  name: string | null;
  instructions: Instruction[];
}

/** Joins continuation lines, drops comments and parser directives, splits off flags and exec form. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  let pending = '';
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (/^\s*#/.test(raw)) continue; // comments (and directives) are dropped, even inside a continuation
    if (pending === '' && raw.trim() === '') continue;
    if (pending === '') startLine = i + 1;
    const continued = /\\\s*$/.test(raw);
    pending += continued ? `${raw.replace(/\\\s*$/, '')} ` : raw;
    if (continued && i < lines.length - 1) continue;
    const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(pending);
    pending = '';
    if (!match) throw new Error(`Dockerfile:${startLine}: not an instruction`);
    let rest = match[2]!.trim();
    const flags: Record<string, string> = {};
    for (let flag = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest); flag; flag = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest)) {
      flags[flag[1]!] = flag[2] ?? 'true';
      rest = rest.slice(flag[0].length);
    }
    instructions.push({ keyword: match[1]!.toUpperCase(), flags, args: rest, exec: execForm(rest), line: startLine });
  }
  return instructions;
}

function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null;
  try {
    const value: unknown = JSON.parse(args);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : null;
  } catch {
    return null;
  }
}

export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args.split(/\s+/);
      stages.push({ image: image!, name: as?.toUpperCase() === 'AS' && name ? name : null, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** The HEALTHCHECK CMD's argv: `HEALTHCHECK [flags] CMD ["a","b"]`. */
export function healthcheckCommand(instruction: Instruction): { exec: string[] | null; shell: string | null } {
  const match = /^CMD\s+(.*)$/is.exec(instruction.args);
  if (!match) return { exec: null, shell: null };
  const exec = execForm(match[1]!.trim());
  return { exec, shell: exec ? null : match[1]!.trim() };
}

/** Docker durations as HEALTHCHECK takes them: 30s, 1m30s, 500ms. */
export function durationMs(text: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let consumed = '';
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    consumed += m[0];
  }
  if (consumed !== text || text === '') throw new Error(`not a Docker duration: ${JSON.stringify(text)}`);
  return total;
}

/**
 * Whether .dockerignore keeps `relPath` out of the build context: patterns in order, the last
 * match wins, `!` re-includes, and a pattern matching a directory covers everything under it.
 */
export function isIgnored(dockerignore: string, relPath: string): boolean {
  const patterns = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const parts = relPath.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const pattern of patterns) {
    const negate = pattern.startsWith('!');
    const re = globToRegExp((negate ? pattern.slice(1) : pattern).replace(/^\/+/, '').replace(/\/+$/, ''));
    if (prefixes.some((p) => re.test(p))) ignored = !negate;
  }
  return ignored;
}

function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      out += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}
