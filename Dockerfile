# One image for the gateway, the worker and the CLI; docker-compose.yml picks the entry point.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# the whole workspace (see .dockerignore): npm ci needs every workspace's package.json
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund
USER node
EXPOSE 8080 8081 9464
CMD ["node", "--import", "tsx", "apps/gateway/src/main.ts"]
