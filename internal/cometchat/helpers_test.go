package cometchat_test

const testKey = "test-rest-key-s3cr3t"
