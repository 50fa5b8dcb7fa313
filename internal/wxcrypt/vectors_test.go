package wxcrypt

// Test vectors from WeChat's official WXBizDataCrypt sample and public SDK tests.

const (
	// WeChat's published sample (aes-sample demo; also in binarywang/WxJava
	// WxMaCryptUtilsTest.testDecryptAnotherWay): a user-info payload.
	officialAppID = "wx4f4bc4dec97d474b"
	officialKey   = "tiihtNczf5v6AKRyjwEUhQ=="
	officialIV    = "r7BXXKkLb8qrSNn05n0qiA=="
	officialData  = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	// sha256 of the 393-byte plaintext.
	officialPlainSHA256 = "3237d8a5dbd413523c194882c7156544d8a06e2afcc97383cc300c17bd09391b"
	officialPlain       = `{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`

	// Synthetic phone payload made with the official key and iv.
	phoneData  = "xT8p8W6jIVdEWQ+ccHuD2bmG5RSiwg14VWRFw/UGVh6Aj+jDIadafJ4xdCIBQ/uxDiyw/MZWvpFyRn3pP3xxVfNQxFtzghvK+Pj5JQI7x412Zc+UKBdZyt5yiQboroSxabTum1k4MMOlnoCxhJ46cxPDT2EuLbNUf2McwNtGO0/9E+Xj/ZwENw48ucueL3UqNoKpXxFYvqH6eawrR2MXnA=="
	phonePlain = `{"phoneNumber":"13580006666","purePhoneNumber":"13580006666","countryCode":"86","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`

	// A second real-world user-info payload, of another app.
	secondAppID = "wx713839856d65b2cb"
	secondKey   = "hpNICkosEDxJG70UF1nffQ=="
	secondIV    = "BE5BTSLFSPkVD9GbYIPnGw=="
	secondData  = "6Iq86z8WewqcZ6slYEXGON7cSFQ1oxml8wR7Mwflua+ygiqPIX42f3rmhF4jd3FIELT6gmgW713d5JST9nQEiwsxinQ0cxpU+P6ccnO9I8OrKGjLEkSZEqFrqGYiWjbvqfmyOqyaQkZ0YH71rOIwvpGET5pH7ej1sEvC2EWMj0MqNxXzYpKXmZaSlGUuWgLu/6wg9qQcBFCMZkpyLPbVGURChyvIrjJiI2zLgxvmXlEXDEjd5AX5kFurqnJjSM6EKrUeXVnLkrNpGjWFeQvUDE7ign7TLWQyK+MDOyH3n1J+qZ4GGFQZ17+EBLU49SYs+zk1Lh98KuRRyvIxjD9mDD43T2geUWMwbZoq0KWZyqE2D+1Lax0w3DeA6Uf4g7nNRLafPQyJhX8KNsNVmUXPPtvQs6Z2g7uwgDI9rivQVwyMCVWY7sWwjmULycFTDh6lpnz5j0SAC+TaCw+MrbJmkLBwiunbTatXHzSuwWP1fYM="
	secondPlain = `{"openId":"okW6_55kv8uXG8G-Wm2TZTCM_UXg","nickName":"zonghua","gender":1,"language":"zh_CN","city":"Zhaoqing","province":"Guangdong","country":"China","avatarUrl":"https://wx.qlogo.cn/mmopen/vi_32/ficK3Qmn5gYyXtgyicmEzxicV65Nayoz1ic0ua4c7oJ2VgDgIdMNwxLnGNEDFRqklkJcuaVTa0QibqVtVUuYOgku5gw/132","watermark":{"timestamp":1574091338,"appid":"wx713839856d65b2cb"}}`
)
