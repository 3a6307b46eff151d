# edgeban: fail2ban's job for containerized mail and web stacks, blocking at the OPNsense edge.
#
# It needs no capability, no host network and no writable root filesystem. Run it as:
#
#   services:
#     edgeban:
#       image: edgeban
#       cap_drop: [ALL]                       # it touches no iptables: no NET_ADMIN, nothing else
#       read_only: true                       # writes only under /data (ledger, offsets, socket)
#       security_opt: [no-new-privileges:true]
#       env_file: edgeban.env                 # OPNSENSE_URL, OPNSENSE_KEY(_FILE), OPNSENSE_SECRET(_FILE)
#       volumes:
#         - ./edgeban:/data                   # jail.local, jail.d/, filter.d/, action.d/ + state
#         - ./mail/logs:/remotelogs/mail:ro   # mount log FOLDERS, not single files: rotation
#         - ./traefik/logs:/remotelogs/traefik:ro   # replaces the file, a file mount keeps the old one
#
# Volume layout as in the fail2ban images: /data/jail.local, /data/jail.d/, /data/filter.d/,
# /data/action.d/ (read by the daemon; they overlay the shipped filters/ and actions/), and the
# daemon's own state next to them in /data (ledger, log offsets, control socket edgeban.sock).
# /data must be writable by uid 65534 (chown 65534:65534 on a bind mount); the logs only readable.
#
# `docker exec edgeban edgeban status` (or ban, unban, banned, reload) talks to the daemon over
# /data/edgeban.sock, as the HEALTHCHECK does; `docker exec edgeban fail2ban-client status JAIL`
# works too (a shim mapping fail2ban-client's everyday commands onto edgeban's).

# ---- build: dev dependencies, esbuild bundle of the CLI into dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY deploy/docker/build.ts ./deploy/docker/build.ts
RUN npm run build

# ---- final: the bundle, the shipped filters and actions, nothing else ----
# The bundle holds every production dependency, so the image carries no node_modules.
FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="edgeban" \
      org.opencontainers.image.description="fail2ban for containerized mail and web stacks, enforcing bans in OPNsense aliases" \
      org.opencontainers.image.licenses="MIT"
# npm, npx and corepack are not needed at run time: less to patch, less to abuse.
# edgeban and fail2ban-client on the PATH: links to the launchers the build writes into dist/bin.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 && ln -s /app/dist/bin/edgeban /usr/local/bin/edgeban \
 && ln -s /app/dist/bin/fail2ban-client /usr/local/bin/fail2ban-client \
 && mkdir -p /data/jail.d /data/filter.d /data/action.d /remotelogs \
 && chown 65534:65534 /data \
 && chmod 0750 /data
WORKDIR /app
COPY --from=build /src/dist ./dist
COPY filters ./filters
COPY actions ./actions
# The control socket defaults to $EDGEBAN_DATA_DIR/edgeban.sock: inside the volume, like all state.
# Set explicitly: outside a container `edgeban run` refuses to create /data on its own.
ENV EDGEBAN_DATA_DIR=/data
# nobody:nogroup, numeric so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65534:65534
VOLUME ["/data"]
# Exit 0 when the daemon answers on its control socket and no firewall target is degraded
# (credentials, privileges or alias need an operator); 1 otherwise. See src/cli/health-command.ts.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/dist/edgeban.mjs", "health"]
# Exec form: node is PID 1 and receives SIGTERM itself; the daemon saves offsets and the ledger
# and exits 0 within seconds, unbanning nothing. It starts no child processes, so no init is needed.
# --max-semi-space-size=16: see bin/edgeban.js. No --enable-source-maps: Node would hold every parsed
# .map of the bundle, 14 MiB of the idle daemon's ~110 (bench/memory.ts); the bundle keeps its function
# names, and the .map files ship beside it (NODE_OPTIONS=--enable-source-maps maps stack traces to src/).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=16", "/app/dist/edgeban.mjs"]
CMD ["run"]
