# syntax=docker/dockerfile:1
# The Switchboard gateway image: `docker build -t switchboard .` at the repository root.
# Stage 1 builds dist/ (server, SDK packages, web pages) with the dev dependencies; stage 2 installs the
# production dependencies only (building better-sqlite3's native addon); stage 3 is the slim runtime with those and dist/, run as the non-root `node` user.
# Configuration comes from the environment (SWITCHBOARD_*, NATS_URL, REDIS_URL, DATABASE_URL; docs/operations.md §2).
# test/unit/deploy.test.ts runs this file's ENTRYPOINT, ENV and HEALTHCHECK as plain processes (no Docker engine there).

FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
COPY packages/backend/package.json packages/backend/
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build

FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
COPY packages/backend/package.json packages/backend/
# better-sqlite3 (the embedded history store) is a native addon: its install script fetches a prebuilt binary
# or compiles one with node-gyp, which needs python3, make and g++ (here only, not in the runtime image).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
RUN npm ci --omit=dev --ignore-scripts && npm rebuild better-sqlite3 && npm cache clean --force

FROM node:20-slim
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Horizontally scalable real-time messaging gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    SWITCHBOARD_PORT=8080 \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/package.json ./package.json
COPY --from=build /src/dist ./dist
RUN mkdir -p /var/lib/switchboard && chown node:node /var/lib/switchboard
USER node
VOLUME ["/var/lib/switchboard"]
EXPOSE 8080
# Ready = 200 on /readyz (503 while draining or while NATS/Redis are down). Node's own fetch: no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.SWITCHBOARD_PORT||8080)+'/readyz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
# SIGTERM drains (docs/operations.md §5): give `docker stop` more than drainTimeoutMs, e.g. `docker stop -t 20`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js", "start"]
