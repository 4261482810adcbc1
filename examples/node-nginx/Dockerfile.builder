# Builder pattern, part 1: an image whose only job is to produce /app/dist.
FROM node:22
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN npm run build
