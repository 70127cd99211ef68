# One image for the gateway, the worker and the CLI; docker-compose.yml picks the entry point.
# Node 22 (current LTS): the code supports Node 20+, whose support ended in 2026-04.

# Stage 1: every dependency, compile the workspace to JavaScript, then drop the development dependencies
# and stage what runs: the root and each workspace's package.json and dist (with the store's Lua files).
FROM node:22-bookworm-slim AS build
WORKDIR /app
# the whole workspace (see .dockerignore): npm ci needs every workspace's package.json
COPY . .
# no install scripts: nothing in the stack needs one (npm 11 skips them by default; the image's npm may not)
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir -p /out \
 && cp -R package.json node_modules /out/ \
 && for d in apps/* packages/*; do mkdir -p "/out/$d" && cp -R "$d/package.json" "$d/dist" "/out/$d/"; done

# Stage 2: production dependencies and compiled JavaScript only; no TypeScript, no loader. Files stay
# owned by root and read-only to the process, which runs as the image's unprivileged `node` user.
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /out ./
USER node
EXPOSE 8080 8081 9464
CMD ["node", "--max-semi-space-size=8", "--v8-pool-size=1", "apps/gateway/dist/main.js"]
