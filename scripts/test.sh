#!/usr/bin/env bash
# The project's one test command (`npm test`): installs what is missing, builds (the server and the
# workspace packages), type-checks, lints the packages, checks the client's bundle size, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
[ -d node_modules ] || npm ci
npm run build --silent
npm run typecheck --silent
npm run lint --silent
npm run lint:packages --silent   # publint on @switchboard/client and @switchboard/backend
npm run size --silent            # the client's browser bundle against packages/client/size-budget.json
npx vitest run "$@"
