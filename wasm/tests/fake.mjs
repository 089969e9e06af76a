// The fake HighLevel server for these tests: the hoopai-fake binary,
// started and driven by the fake's own test helper.
export { apiCall, fingerprint, startFake } from "../../fake/node-test/fake.mjs";
