package mpsim

import (
	"fmt"
	"time"
)

// PhoneButtonResult is the e.detail of a getPhoneNumber button tap, as the
// front end receives it and often forwards it whole. On WeChat (base
// library 2.21.2 and later) it carries the phone code together with the
// legacy encryptedData/iv and a cloudID; on Douyin (base library 3.51.0
// and later) the phone code and encryptedData/iv.
type PhoneButtonResult struct {
	ErrMsg        string `json:"errMsg"` // "getPhoneNumber:ok"
	Code          string `json:"code,omitempty"`
	EncryptedData string `json:"encryptedData"`
	IV            string `json:"iv"`
	CloudID       string `json:"cloudID,omitempty"`
}

// PhoneButton does what a tap on the getPhoneNumber button does: on WeChat
// it mints a phone code (PhoneCodeTTL, single use, exchangeable with
// getuserphonenumber) and encrypts the phone payload with the user's
// current session key (after an idle expiry, see Quirks.KeyIdleTTL, a key no
// exchange returned). A WeChat user who never logged in gets a key minted
// for the occasion, which no exchange returned either: WeChat's code flow
// needs no login, but the encryptedData beside it is then undecryptable. On
// Douyin the user must have logged in (ErrNoSession otherwise: the new way
// still requires a prior tt.login); the phone code is exchangeable with
// get_phonenumber_info. On QQ, as on Douyin, the user must have logged
// in; QQ documents no phone code, so only encryptedData/iv are given. The
// same for Kuaishou (no phone-code exchange here).
func (s *Sim) PhoneButton(appID, userName, phone string) (PhoneButtonResult, error) {
	if userName == "" || phone == "" {
		return PhoneButtonResult{}, fmt.Errorf("%w: user and phone are required", ErrInvalid)
	}
	s.mu.Lock()
	a, err := s.appLocked(appID)
	if err != nil {
		s.mu.Unlock()
		return PhoneButtonResult{}, err
	}
	if a.Platform == Baidu {
		s.mu.Unlock()
		return PhoneButtonResult{}, fmt.Errorf("%w: Baidu's button gives encryptedData only (EncryptPhone)", ErrWrongPlatform)
	}
	if isFeishuFamily(a.Platform) {
		s.mu.Unlock()
		return PhoneButtonResult{}, fmt.Errorf("%w: Feishu documents no phone button flow", ErrWrongPlatform)
	}
	now := s.nowLocked()
	s.pruneLocked(now)
	var res PhoneButtonResult
	var key string
	if a.Platform == WeChat {
		u := s.userLocked(a, userName, now)
		key = s.liveKeyLocked(u, now)
		res.Code = randHex(32)
		s.phoneCodes[res.Code] = &phoneCode{appID: appID, user: userName, phone: phone, expires: now.Add(s.phoneTTL)}
		res.CloudID = cloudID()
	} else if u := s.users[userKey(appID, userName)]; u != nil && u.key != "" {
		u.lastSeen = now
		key = s.liveKeyLocked(u, now)
	}
	if key != "" && a.Platform == Douyin {
		res.Code = randHex(32)
		s.phoneCodes[res.Code] = &phoneCode{appID: appID, user: userName, phone: phone, expires: now.Add(s.phoneTTL)}
	}
	s.mu.Unlock()
	if key == "" {
		return PhoneButtonResult{}, fmt.Errorf("%w: %q", ErrNoSession, userName)
	}
	ed, iv, err := encryptPayload(key, a.AppID, now, phonePayload(phone), EncryptOptions{})
	if err != nil {
		return PhoneButtonResult{}, err
	}
	res.ErrMsg = "getPhoneNumber:ok"
	res.EncryptedData, res.IV = ed, iv
	return res, nil
}

func phonePayload(phone string) map[string]any {
	return map[string]any{
		"phoneNumber":     phone,
		"purePhoneNumber": phone,
		"countryCode":     "86",
	}
}

// cloudID looks like an opaque cloud-call id; nothing can redeem it here.
func cloudID() string { return "SIM_" + randAlnum(40) }

// Step is one day of WeRun data.
type Step struct {
	Timestamp int64 `json:"timestamp"` // the day's start, Unix seconds
	Step      int   `json:"step"`
}

// WeRunDays is how many days WeRun gives when no steps are given.
const WeRunDays = 30

// WeRun encrypts a wx.getWeRunData payload, {"stepInfoList": [...]}, with the
// user's current session key, like Encrypt. It carries no watermark unless
// Quirks.WeRunWatermark is set (see Quirks for why). With no steps it gives
// WeRunDays days of made-up counts, ending today (simulated time, UTC).
func (s *Sim) WeRun(appID, userName string, steps []Step) (encryptedData, iv string, err error) {
	if len(steps) == 0 {
		today := s.Now().UTC().Truncate(24 * time.Hour)
		for i := WeRunDays - 1; i >= 0; i-- {
			day := today.Add(-time.Duration(i) * 24 * time.Hour)
			steps = append(steps, Step{Timestamp: day.Unix(), Step: int(splitmix64(uint64(day.Unix())) % 20000)})
		}
	}
	list := make([]any, len(steps))
	for i, st := range steps {
		list[i] = map[string]any{"timestamp": st.Timestamp, "step": st.Step}
	}
	return s.Encrypt(appID, userName, map[string]any{"stepInfoList": list}, EncryptOptions{NoWatermark: !s.Quirks().WeRunWatermark})
}
