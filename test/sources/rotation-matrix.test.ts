import { defineMatrix } from './matrix.ts';

defineMatrix(false);
