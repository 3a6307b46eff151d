import { defineMatrix } from './matrix.ts';

// forcePolling: no inotify at all, as on NFS; the supervisor's interval is the only trigger.
defineMatrix(true);
