/**
 * edgeban's own jail defaults, read before the user's jail.conf so that a user who mounts only a
 * jail.local still has `%(action_)s`, `%(action_mw)s` … and the stock jails. Same option names as
 * fail2ban's jail.conf; the ban action defaults to edgeban's native `opnsense`. Shown in errors as
 * `<edgeban>/jail.conf`.
 */

export const BUILTIN_JAIL_CONF_PATH = '<edgeban>/jail.conf';

export const BUILTIN_JAIL_CONF = `\
[DEFAULT]

# Never ban the addresses of this host.
ignoreself = true
ignorecommand =

bantime = 10m
findtime = 10m
maxretry = 5
maxmatches = %(maxretry)s

backend = auto
usedns = warn
logencoding = auto

# Jails are off unless a jail.local / jail.d file enables them.
enabled = false

# Filter mode, passed to filters that have modes (postfix, dovecot, …).
mode = normal
filter = %(__name__)s[mode=%(mode)s]

# Values the fail2ban-style action shortcuts below refer to.
destemail = root@localhost
sender = root@<fq-hostname>
mta = sendmail
protocol = tcp
chain = <known/chain>
port = 0:65535
fail2ban_agent = edgeban/%(fail2ban_version)s

# The ban action: edgeban's OPNsense alias action. Give it the firewall and credentials in
# jail.local, e.g. banaction = opnsense[firewall="192.0.2.1", key="…", secret="…"]
banaction = opnsense
banaction_allports = %(banaction)s

# fail2ban's action shortcuts, by the same names. Only opnsense, ntfy and webhook run in edgeban;
# the others (mail, whois, …) are reported as not run; the jail still bans.
action_ = %(banaction)s[port="%(port)s", protocol="%(protocol)s", chain="%(chain)s"]
action_mw = %(action_)s
            %(mta)s-whois[sender="%(sender)s", dest="%(destemail)s", protocol="%(protocol)s", chain="%(chain)s"]
action_mwl = %(action_)s
             %(mta)s-whois-lines[sender="%(sender)s", dest="%(destemail)s", logpath="%(logpath)s", chain="%(chain)s"]
action_xarf = %(action_)s
              xarf-login-attack[service=%(__name__)s, sender="%(sender)s", logpath="%(logpath)s", port="%(port)s"]
action_cf_mwl = cloudflare[cfuser="%(cfemail)s", cftoken="%(cfapikey)s"]
                %(mta)s-whois-lines[sender="%(sender)s", dest="%(destemail)s", logpath="%(logpath)s", chain="%(chain)s"]
action_blocklist_de = blocklist_de[email="%(sender)s", service="%(__name__)s", apikey="%(blocklist_de_apikey)s", agent="%(fail2ban_agent)s"]
action_abuseipdb = abuseipdb
action = %(action_)s


# The stacks edgeban ships filters for (filters/NAME.conf). Log paths are where the containers'
# logs are usually mounted; override logpath in jail.local.

[postfix]
enabled = false
port = smtp,465,submission
logpath = /var/log/mail.log

[dovecot]
enabled = false
port = pop3,pop3s,imap,imaps,submission,465,sieve
logpath = /var/log/mail.log

# fail2ban's jail.conf runs the postfix filter in its auth mode for this jail (edgeban: normal).
[postfix-sasl]
enabled = false
filter = postfix[mode=auth]
port = smtp,465,submission,imap,imaps,pop3,pop3s
logpath = /var/log/mail.log

[traefik]
enabled = false
port = http,https
logpath = /var/log/traefik/access.log

[nginx]
enabled = false
port = http,https
logpath = /var/log/nginx/error.log
          /var/log/nginx/access.log

[apache]
enabled = false
port = http,https
logpath = /var/log/apache2/error.log
          /var/log/apache2/access.log
`;
