// Placeholder: the OPNsense simulator command is implemented with src/simulator.
export async function runSimulateCommand(_argv: string[]): Promise<number> {
  process.stderr.write('edgeban simulate: not implemented yet\n');
  return 2;
}
