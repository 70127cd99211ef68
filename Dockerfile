# One image for the gateway and the worker; docker-compose.yml picks the entry point.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/worker/package.json apps/worker/
COPY packages/domain/package.json packages/domain/
COPY packages/contract/package.json packages/contract/
COPY packages/store/package.json packages/store/
COPY packages/config/package.json packages/config/
COPY packages/testing/package.json packages/testing/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY apps apps
COPY packages packages
USER node
EXPOSE 8080 8081 9464
CMD ["node", "--import", "tsx", "apps/gateway/src/main.ts"]
