// Placeholder: issue 3 implements the fail2ban-regex equivalent here.
export async function runTestFilterCommand(_argv: string[]): Promise<number> {
  process.stderr.write('edgeban test-filter: not implemented yet\n');
  return 2;
}
