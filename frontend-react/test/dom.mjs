// Loaded before every test file (node --import): a DOM (happy-dom) on the globals, as
// @testing-library/react needs one when it is imported, and React told that tests
// wrap their updates in act().
import { GlobalRegistrator } from "@happy-dom/global-registrator";

GlobalRegistrator.register({ url: "http://127.0.0.1:8080/" });
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
