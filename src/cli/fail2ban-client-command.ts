import { UserFacingError } from '../util/errors.ts';
import { edgebanVersion } from './version.ts';

/**
 * The `fail2ban-client` shim (on the image's PATH): fail2ban-client's everyday commands, run as
 * the edgeban commands they correspond to, so scripts and habits (`docker exec edgeban
 * fail2ban-client status sshd`) keep working. Anything else is refused with its edgeban form.
 */

const HELP = `usage: fail2ban-client [-s SOCKET] COMMAND   (edgeban's fail2ban-client shim)

  status                        edgeban status
  status JAIL                   edgeban status JAIL
  set JAIL banip IP …           edgeban set JAIL banip IP …
  set JAIL unbanip IP …         edgeban set JAIL unbanip IP …
  unban IP … | --all            edgeban unban IP … | --all
  banned [IP …]                 edgeban banned [IP …]
  reload [JAIL]                 edgeban reload [JAIL]
  ping                          "Server replied: pong" when the daemon answers
  version                       edgeban version

Everything else: see edgeban --help.`;

/** fail2ban-client's options before the command: -s SOCKET maps to --socket; the rest have no meaning here. */
const IGNORED_FLAGS = new Set(['-q', '-v', '-vv', '-vvv', '-x', '-d', '-b', '-f', '-i', '--async']);
const FLAGS_WITH_VALUE = new Set(['-c', '-p', '--loglevel', '--logtarget', '--syslogsocket', '--timeout']);

export async function runFail2banClientCommand(argv: string[]): Promise<number> {
  const passOn: string[] = [];
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const flag = argv[i]!;
    if (flag === '-h' || flag === '--help') return help();
    if (flag === '-V' || flag === '--version') return version();
    if (flag === '-s') passOn.push('--socket', argv[++i] ?? '');
    else if (FLAGS_WITH_VALUE.has(flag)) i++;
    else if (!IGNORED_FLAGS.has(flag)) throw new UserFacingError(`fail2ban-client option ${flag} has no edgeban equivalent\n${HELP}`);
  }
  const [verb, ...rest] = argv.slice(i);
  const commands = await import('./control-commands.ts');
  switch (verb) {
    case undefined:
    case 'help':
      return help();
    case 'version':
      return version();
    case 'ping':
      return commands.runPingCommand([...rest, ...passOn]);
    case 'status':
      return commands.runStatusCommand([...rest, ...passOn]);
    case 'banned':
      return commands.runBannedCommand([...rest, ...passOn]);
    case 'reload':
      return commands.runReloadCommand([...rest.filter((w) => w !== '--unban' && w !== '--restart'), ...passOn]);
    case 'unban':
      return commands.runUnbanCommand([...rest, ...passOn]);
    case 'set':
      if (rest[1] === 'banip' || rest[1] === 'unbanip') {
        // `unbanip --report-absence`: edgeban always reports how many bans ended.
        return commands.runSetCommand([...rest.filter((w) => w !== '--report-absence'), ...passOn]);
      }
      break;
    default:
      break;
  }
  throw new UserFacingError(`${JSON.stringify([verb, ...rest].join(' '))} is not mapped by edgeban's fail2ban-client shim\n${HELP}`);
}

function help(): number {
  process.stdout.write(`${HELP}\n`);
  return 0;
}

function version(): number {
  process.stdout.write(`edgeban ${edgebanVersion()} (fail2ban-client shim)\n`);
  return 0;
}
