/**
 * fail2ban's MyTime.str2seconds: `600`, `10m`, `1h30m`, `1d 12h`, `2w`, `1mo`, `1y-6mo`, `-1`. The
 * abbreviations become multiplications, adjacent groups an addition, and the result is evaluated
 * as arithmetic (fail2ban calls eval; here a small evaluator that knows only + - * / and brackets).
 */

const UNITS: readonly [RegExp, number][] = [
  [/(?<=[\d\s])(days?|da|dd?)\b/gi, 24 * 60 * 60],
  [/(?<=[\d\s])(weeks?|wee?|ww?)\b/gi, 7 * 24 * 60 * 60],
  [/(?<=[\d\s])(months?|mon?)\b/gi, ((365 * 3 + 366) * 24 * 60 * 60) / 4 / 12],
  [/(?<=[\d\s])(years?|yea?|yy?)\b/gi, ((365 * 3 + 366) * 24 * 60 * 60) / 4],
  [/(?<=[\d\s])(seconds?|sec?|ss?)\b/gi, 1],
  [/(?<=[\d\s])(minutes?|min?|mm?)\b/gi, 60],
  [/(?<=[\d\s])(hours?|hou?|hh?)\b/gi, 60 * 60],
];

/** Seconds, or null if the text is not a duration fail2ban would accept. */
export function parseDuration(text: string): number | null {
  let expr = text.replace(/(?<=[a-z])(\d)/gi, ' $1');
  for (const [re, factor] of UNITS) expr = expr.replace(re, `*${factor}`);
  expr = expr.replace(/(\d)\s+(\d)/g, '$1+$2');
  const value = evaluate(expr);
  return value !== null && Number.isFinite(value) ? value : null;
}

function evaluate(expr: string): number | null {
  const tokens = expr.match(/\d+(?:\.\d*)?|\.\d+|[-+*/()]|\S/g) ?? [];
  let pos = 0;
  const peek = (): string | undefined => tokens[pos];
  const sum = (): number | null => {
    let left = product();
    while (left !== null && (peek() === '+' || peek() === '-')) {
      const op = tokens[pos++];
      const right = product();
      if (right === null) return null;
      left = op === '+' ? left + right : left - right;
    }
    return left;
  };
  const product = (): number | null => {
    let left = unary();
    while (left !== null && (peek() === '*' || peek() === '/')) {
      const op = tokens[pos++];
      const right = unary();
      if (right === null) return null;
      left = op === '*' ? left * right : left / right;
    }
    return left;
  };
  const unary = (): number | null => {
    const token = peek();
    if (token === '-' || token === '+') {
      pos++;
      const value = unary();
      return value === null ? null : token === '-' ? -value : value;
    }
    if (token === '(') {
      pos++;
      const value = sum();
      if (peek() !== ')') return null;
      pos++;
      return value;
    }
    if (token !== undefined && /^(\d|\.\d)/.test(token)) {
      pos++;
      return Number(token);
    }
    return null;
  };
  if (tokens.length === 0) return null;
  const result = sum();
  return pos === tokens.length ? result : null;
}
