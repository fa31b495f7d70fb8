/** The `drover` command line (filled in by the API issue). */
export async function main(argv: string[]): Promise<number> {
  const command = argv[2];
  if (command === 'start') {
    console.error('drover start: not yet: the embedded default lands with the engine and API issues');
    return 1;
  }
  console.error('usage: drover <command> (not yet implemented)');
  return 1;
}
