/**
 * Encodes like PHP's json_encode with default flags, which is what OPNsense replies with:
 * forward slashes become `\/` and non-ASCII characters become `\uXXXX` escapes.
 * Clients that compare raw bodies or re-sign them must cope with this spelling.
 */
export function phpJsonEncode(value: unknown): string {
  const json = JSON.stringify(value) ?? 'null';
  // Both characters can only occur inside string literals in JSON text, so a global replace is safe.
  return json.replace(/\//g, '\\/').replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
