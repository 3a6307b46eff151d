// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole 7-bit range, control characters included, is what ASCII means here.
const NON_ASCII = /[^\x00-\x7f]/;

/** True when every character is 7-bit: the fast paths (case folding, date parsing) need no Unicode care. */
export function isAsciiText(text: string): boolean {
  return !NON_ASCII.test(text);
}
