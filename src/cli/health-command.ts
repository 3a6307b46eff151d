import { UserFacingError } from '../util/errors.ts';

/** Placeholder: being written. */
export async function runHealthCommand(_argv: string[]): Promise<number> {
  throw new UserFacingError('not implemented yet');
}
