export async function runReconcileCommand(_argv: string[]): Promise<number> {
  process.stderr.write('edgeban reconcile: not implemented yet\n');
  return 2;
}
