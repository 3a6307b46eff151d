# Placeholder until the container issue: the image builds and runs the CLI from source on Node 24.
# The final image (multi-stage bundle, non-root, no capabilities, read-only, HEALTHCHECK) comes later.
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY filters ./filters
COPY actions ./actions
USER node
VOLUME ["/data"]
ENTRYPOINT ["node", "/app/bin/edgeban.js"]
