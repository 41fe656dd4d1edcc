/* eslint-disable */
/**
 * The realtime protocol and this app's topics.
 * Generated from the Pydantic models by `python -m aiohttp_realtime.typegen` (pydantic-to-typescript,
 * json2ts and a documented post-step). Do not edit: change the models and regenerate.
 */
export * from "./protocol.js";
export * from "./app.js";
